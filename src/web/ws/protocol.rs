//! The WebSocket wire format (API.md "Typing and interruption"): what a client may send,
//! and the two frames a session writes itself, `hello` and `error`.
//!
//! Presence frames (`typing`, `bot`, `interrupted`) are not here: the actor encodes each of
//! them once (`conversation::presence`) and every session forwards the same text.

use serde::Serialize;
use serde_json::Value;

/// Largest client frame judged at all. Real frames are a few dozen bytes; anything up to the
/// transport limit (`super::MAX_TRANSPORT_MESSAGE`) gets an `error` frame and the socket stays.
pub const MAX_CLIENT_FRAME: usize = 1024;

/// A frame the client sent, understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame {
    Typing(bool),
    Interrupt,
}

/// Why a client frame was refused; sent back as `{"type":"error","code","message"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: &'static str,
}

impl FrameError {
    const fn new(code: &'static str, message: &'static str) -> FrameError {
        FrameError { code, message }
    }

    pub const TOO_LARGE: FrameError = FrameError::new("too_large", "frame larger than 1024 bytes");
    pub const BAD_JSON: FrameError = FrameError::new("bad_json", "expected a JSON object");
    pub const UNKNOWN_TYPE: FrameError =
        FrameError::new("unknown_type", "`type` must be \"typing\" or \"interrupt\"");
    pub const INVALID: FrameError = FrameError::new(
        "invalid_frame",
        "a typing frame needs `active`: true or false",
    );
    pub const BINARY: FrameError =
        FrameError::new("binary_frame", "only JSON text frames are understood");
    pub const BUSY: FrameError =
        FrameError::new("busy", "the conversation is busy; try again shortly");
}

/// Reads one text frame from a client.
pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    if text.len() > MAX_CLIENT_FRAME {
        return Err(FrameError::TOO_LARGE);
    }
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::BAD_JSON)?;
    let frame = value.as_object().ok_or(FrameError::BAD_JSON)?;
    match frame.get("type").and_then(Value::as_str) {
        Some("typing") => frame
            .get("active")
            .and_then(Value::as_bool)
            .map(ClientFrame::Typing)
            .ok_or(FrameError::INVALID),
        Some("interrupt") => Ok(ClientFrame::Interrupt),
        _ => Err(FrameError::UNKNOWN_TYPE),
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Wire<'a> {
    Hello { participant_id: &'a str },
    Error { code: &'a str, message: &'a str },
}

fn encode(w: &Wire<'_>) -> String {
    // Serialising these plain structs cannot fail.
    serde_json::to_string(w).unwrap_or_default()
}

/// `{"type":"hello","participant_id"}`, the first frame of every session.
pub fn hello(participant_id: &str) -> String {
    encode(&Wire::Hello { participant_id })
}

/// `{"type":"error","code","message"}`.
pub fn error(e: &FrameError) -> String {
    encode(&Wire::Error {
        code: e.code,
        message: e.message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn understands_the_two_client_frames() {
        assert_eq!(
            parse(r#"{"type":"typing","active":true}"#),
            Ok(ClientFrame::Typing(true))
        );
        assert_eq!(
            parse(r#"{"active":false,"type":"typing"}"#),
            Ok(ClientFrame::Typing(false))
        );
        assert_eq!(parse(r#"{"type":"interrupt"}"#), Ok(ClientFrame::Interrupt));
    }

    #[test]
    fn refuses_everything_else_with_a_code() {
        let cases = [
            ("{\"type\":", "bad_json"),
            ("[1,2]", "bad_json"),
            ("\"typing\"", "bad_json"),
            (r#"{"type":"dance"}"#, "unknown_type"),
            (r#"{"active":true}"#, "unknown_type"),
            (r#"{"type":5}"#, "unknown_type"),
            (r#"{"type":"typing"}"#, "invalid_frame"),
            (r#"{"type":"typing","active":"yes"}"#, "invalid_frame"),
        ];
        for (text, code) in cases {
            assert_eq!(parse(text).map_err(|e| e.code), Err(code), "{text}");
        }
        let big = format!(
            r#"{{"type":"typing","active":true,"pad":"{}"}}"#,
            "x".repeat(2000)
        );
        assert_eq!(parse(&big), Err(FrameError::TOO_LARGE));
    }

    #[test]
    fn encodes_hello_and_error() {
        assert_eq!(hello("p_1"), r#"{"type":"hello","participant_id":"p_1"}"#);
        let e: Value = serde_json::from_str(&error(&FrameError::BINARY)).unwrap();
        assert_eq!(e["type"], "error");
        assert_eq!(e["code"], "binary_frame");
    }
}
