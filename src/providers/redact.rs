//! Provider URLs as they may be shown in `reply.failed` texts and logs: without user-info,
//! query string or fragment, where API keys like to hide.

/// `url` as it may be shown: no user-info, no query string, no fragment.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => "(the configured base_url)".into(),
    }
}
