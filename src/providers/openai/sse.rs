//! Reading a Server-Sent Events body the way OpenAI-format servers send it: `data:` lines,
//! events ended by a blank line, comments and other fields ignored, `\n`, `\r\n` or `\r`
//! line ends. Bounded: a line longer than [`MAX_LINE`] is an error, not a growing buffer.

/// The longest line we keep (a chunk of a few tokens is well under 4 KiB).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Default)]
pub struct SseReader {
    line: Vec<u8>,
    data: Option<String>,
    /// The last byte was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct LineTooLong;

impl SseReader {
    /// Feeds `bytes`; pushes the `data` of every event they complete onto `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), LineTooLong> {
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => self.end_line(out),
                _ if self.line.len() >= MAX_LINE => return Err(LineTooLong),
                _ => self.line.push(b),
            }
        }
        Ok(())
    }

    /// The body ended: an event not closed by a blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        if !self.line.is_empty() {
            self.end_line(out);
        }
        if let Some(d) = self.data.take() {
            out.push(d);
        }
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if let Some(d) = self.data.take() {
                out.push(d);
            }
            return;
        }
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(parts: &[&str]) -> Vec<String> {
        let mut r = SseReader::default();
        let mut out = Vec::new();
        for p in parts {
            r.push(p.as_bytes(), &mut out).unwrap();
        }
        r.finish(&mut out);
        out
    }

    #[test]
    fn events_across_any_split() {
        let body =
            "data: {\"a\":1}\n\n: keep-alive\n\nevent: x\ndata:{\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        let whole = read(&[body]);
        assert_eq!(whole, ["{\"a\":1}", "{\"b\":2}", "[DONE]"]);
        let bytes: Vec<String> = body.chars().map(String::from).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(read(&refs), whole);
    }

    #[test]
    fn multi_line_data_and_an_unclosed_last_event() {
        assert_eq!(read(&["data: a\ndata: b\n\ndata: c"]), ["a\nb", "c"]);
        assert_eq!(read(&["data: x\r\rdata: y\r\r"]), ["x", "y"]);
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let mut r = SseReader::default();
        let big = vec![b'x'; MAX_LINE + 1];
        assert_eq!(r.push(&big, &mut Vec::new()), Err(LineTooLong));
    }
}
