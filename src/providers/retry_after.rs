//! Reading an HTTP `Retry-After` header (RFC 9110 §10.2.3): either delay-seconds or an
//! HTTP-date. Every kind that retries a 429 or 503 waits at least this long; whether the
//! wait is short enough to be worth it is the retry policy's call (`RetryPolicy::max_wait`).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The wait a response asks for, if it carries a readable `Retry-After`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse(value, SystemTime::now())
}

/// `value` read at `now`: seconds (fractions allowed, as some servers send them) or an
/// HTTP-date; a date in the past means "now". Anything else is ignored.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn seconds() {
        assert_eq!(parse("1", at(0)), Some(Duration::from_secs(1)));
        assert_eq!(parse(" 120 ", at(0)), Some(Duration::from_secs(120)));
        assert_eq!(parse("0.5", at(0)), Some(Duration::from_millis(500)));
    }

    #[test]
    fn http_dates_count_from_now() {
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777.
        let now = at(784_111_777 - 3);
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(3))
        );
        // The obsolete forms RFC 9110 still asks recipients to accept.
        assert_eq!(
            parse("Sunday, 06-Nov-94 08:49:37 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse("Sun Nov  6 08:49:37 1994", now),
            Some(Duration::from_secs(3))
        );
        // A date already past: retry now.
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:37 GMT", at(784_111_777 + 60)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn nonsense_is_ignored() {
        for v in [
            "",
            "soon",
            "-1",
            "NaN",
            "inf",
            "1e400",
            "Sun, 99 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse(v, at(0)), None, "{v:?}");
        }
    }

    #[test]
    fn from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }
}
