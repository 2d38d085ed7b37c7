//! Our own request path to an OpenAI-format server: a plain reqwest client, the bearer key,
//! and answers read by status first, so a 429's or 503's `Retry-After` reaches the retry
//! logic (async-openai's errors drop the headers) and error bodies are read bounded.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::errors::{Context, Failure, from_reqwest, from_status, shown_url};

/// How much of an error body is read (its `error.message` is all we use).
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// How much of a JSON answer (a Responses object) is read.
const JSON_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// One provider's server: where it is, the key, and what to call it in messages.
#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
    /// Paths are added to its path; a query (Azure's `api-version`) is kept.
    base_url: reqwest::Url,
    api_key: Option<String>,
    provider: String,
    model: String,
    shown: String,
}

impl Upstream {
    /// `timeout` bounds whole requests (calls that answer at once); streaming calls are
    /// bounded by the reply's deadlines instead.
    pub fn new(
        provider: &str,
        base_url: &str,
        api_key: Option<&str>,
        model: &str,
        timeout: Option<Duration>,
    ) -> Result<Self, String> {
        let parsed =
            reqwest::Url::parse(base_url).map_err(|_| "`base_url` is not a URL".to_string())?;
        Ok(Upstream {
            http: super::http_client(timeout)?,
            base_url: parsed,
            api_key: api_key.map(str::to_string),
            provider: provider.to_string(),
            model: model.to_string(),
            shown: shown_url(base_url),
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn cx(&self) -> Context<'_> {
        Context {
            provider: &self.provider,
            model: &self.model,
            url: &self.shown,
        }
    }

    fn with_key(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    /// `base_url` with `path` (starting with `/`) added to its path.
    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let joined = format!("{}{path}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.with_key(self.http.post(self.url(path)))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.with_key(self.http.get(self.url(path)))
    }

    /// Sends `req`; a non-success answer becomes a [`Failure`] described from its status,
    /// headers and error body.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let resp = req.send().await.map_err(|e| from_reqwest(e, &self.cx()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let body = read_limited(resp, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        Err(from_status(status, &headers, &body, &self.cx()))
    }

    /// Sends `req` and reads its JSON answer as `T`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let resp = self.send(req).await?;
        let body = read_limited(resp, JSON_BODY_LIMIT)
            .await
            .map_err(|e| from_reqwest(e, &self.cx()))?;
        serde_json::from_slice(&body).map_err(|e| Failure {
            message: format!("the provider sent an answer chatwire cannot read: {e}"),
            retryable: false,
            after: None,
        })
    }

    /// A failure of the stream of `resp` after its head was read.
    pub fn broken(&self, e: reqwest::Error) -> Failure {
        let mut f = from_reqwest(e, &self.cx());
        f.message = f.message.replace(
            "the connection to the provider failed",
            "the provider's stream broke off",
        );
        f
    }
}

/// The body, up to `limit` bytes (the rest is not read).
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}
