//! JWT owners (API.md "Identity"): `Authorization: Bearer JWT` acts as the JWT's `sub`
//! when it is signed by a configured key (HS256 secret, RS256 or ES256 public key), not
//! expired, and for the configured issuer and audience; anything else is 401
//! `invalid_token` — expired, wrongly signed, `alg: none`, missing `exp`, a wrong `iss`
//! or `aud`, or an algorithm the key is not made for (confusion). `POST /api/session`
//! trades a JWT for the session cookie. Keys: `tests/api/keys` (test-only).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::identity::{Browser, ids_of};

const SECRET: &str = "test-only-secret-of-at-least-32-bytes!!";
const ISSUER: &str = "https://app.example";
const AUDIENCE: &str = "chatwire";

fn key_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/keys")
        .join(name)
}

fn key(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).expect("test key")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `sub` valid for an hour, for our issuer and audience.
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 3600, "iss": ISSUER, "aud": AUDIENCE})
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: &Value) -> String {
    let k = EncodingKey::from_rsa_pem(&key("rsa_private.pem")).unwrap();
    encode(&Header::new(Algorithm::RS256), claims, &k).unwrap()
}

fn es256(claims: &Value) -> String {
    let k = EncodingKey::from_ec_pem(&key("ec_private.pem")).unwrap();
    encode(&Header::new(Algorithm::ES256), claims, &k).unwrap()
}

/// A server accepting HS256 by the secret and the public key `public` (RSA or EC).
async fn spawn_jwt_app(public: &str, issuer_and_audience: bool) -> TestApp {
    let pem = key(public);
    spawn_app_with(move |c| {
        let (iss, aud) = match issuer_and_audience {
            true => (Some(ISSUER.to_string()), Some(AUDIENCE.to_string())),
            false => (None, None),
        };
        c.jwt = chatwire::config::JwtConfig::new(Some(SECRET.as_bytes()), Some(&pem), iss, aud)
            .expect("jwt config");
    })
    .await
}

async fn call(app: &TestApp, method: Method, path: &str, jwt: &str) -> (u16, Value) {
    let mut req = app
        .http
        .request(method.clone(), app.url(path))
        .bearer_auth(jwt);
    if method == Method::POST {
        req = req.json(&json!({}));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create(app: &TestApp, jwt: &str) -> String {
    let (status, body) = call(app, Method::POST, "/api/conversations", jwt).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn list(app: &TestApp, jwt: &str) -> (u16, Value) {
    call(app, Method::GET, "/api/conversations", jwt).await
}

fn assert_invalid(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(body["error"]["code"], "invalid_token", "{what}");
}

#[tokio::test]
async fn valid_jwts_act_as_their_subject_hs256_rs256_es256() {
    let app = spawn_jwt_app("rsa_public.pem", true).await;
    let alice = hs256(&claims("alice"));
    let a1 = create(&app, &alice).await;
    // The same subject through another algorithm is the same owner.
    let a2 = create(&app, &rs256(&claims("alice"))).await;
    let (status, body) = list(&app, &alice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids_of(&body), vec![a2.clone(), a1.clone()]);
    // No session cookie for a JWT caller: the app holds the credential.
    let resp = app
        .http
        .post(app.url("/api/conversations"))
        .bearer_auth(&alice)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("set-cookie").is_none());

    // Another subject sees none of them, and gets 404 on them.
    let bob = rs256(&claims("bob"));
    let (_, body) = list(&app, &bob).await;
    assert!(ids_of(&body).is_empty());
    let (status, _) = call(&app, Method::GET, &format!("/api/conversations/{a1}"), &bob).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/conversations/{a1}"),
        &alice,
    )
    .await;
    assert_eq!(status, 200);
    // The event stream takes the JWT too.
    let events = app
        .http
        .get(app.url(&format!("/api/conversations/{a1}/events")))
        .bearer_auth(&alice)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);

    let ec = spawn_jwt_app("ec_public.pem", false).await;
    let carol = es256(&json!({"sub": "carol", "exp": now() + 600}));
    let c1 = create(&ec, &carol).await;
    let (_, body) = list(&ec, &carol).await;
    assert_eq!(ids_of(&body), vec![c1]);
}

#[tokio::test]
async fn bad_jwts_are_invalid_token() {
    let app = spawn_jwt_app("rsa_public.pem", true).await;
    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 3600);
    cases.push(("expired", hs256(&expired)));
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        &EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long!!"),
    )
    .unwrap();
    cases.push(("wrongly signed", wrong_key));
    let good = hs256(&claims("alice"));
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged = URL_SAFE_NO_PAD.encode(
        json!({"sub": "mallory", "exp": now() + 3600, "iss": ISSUER, "aud": AUDIENCE}).to_string(),
    );
    cases.push((
        "claims swapped under a signature",
        format!("{head}.{forged}.{sig}"),
    ));
    let none_head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("alice").to_string());
    cases.push(("alg none", format!("{none_head}.{body}.")));
    let none_upper = URL_SAFE_NO_PAD.encode(r#"{"alg":"None","typ":"JWT"}"#);
    cases.push(("alg None", format!("{none_upper}.{body}.")));
    let mut no_exp = claims("alice");
    no_exp.as_object_mut().unwrap().remove("exp");
    cases.push(("missing exp", hs256(&no_exp)));
    let mut no_sub = claims("alice");
    no_sub.as_object_mut().unwrap().remove("sub");
    cases.push(("missing sub", hs256(&no_sub)));
    let mut wrong_iss = claims("alice");
    wrong_iss["iss"] = json!("https://other.example");
    cases.push(("wrong issuer", rs256(&wrong_iss)));
    let mut no_iss = claims("alice");
    no_iss.as_object_mut().unwrap().remove("iss");
    cases.push(("missing issuer", hs256(&no_iss)));
    let mut wrong_aud = claims("alice");
    wrong_aud["aud"] = json!("someone-else");
    cases.push(("wrong audience", rs256(&wrong_aud)));
    // Algorithm confusion: HS256 "signed" with the RSA public key as the secret.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        &EncodingKey::from_secret(&key("rsa_public.pem")),
    )
    .unwrap();
    cases.push(("HS256 with the public key as secret", confused));
    // An algorithm no key is made for (ES256 while only an RSA key is configured).
    cases.push(("ES256 without an EC key", es256(&claims("alice"))));
    cases.push(("garbage", "a.b.c".to_string()));

    for (what, jwt) in &cases {
        let (status, body) = list(&app, jwt).await;
        assert_invalid(status, &body, what);
        let (status, body) = call(&app, Method::POST, "/api/conversations", jwt).await;
        assert_invalid(status, &body, what);
        let (status, body) = call(&app, Method::POST, "/api/session", jwt).await;
        assert_invalid(status, &body, what);
    }

    // Only the confusion key differs on a server with the secret alone: RS256 refused.
    let hs_only = spawn_app_with(|c| {
        c.jwt =
            chatwire::config::JwtConfig::new(Some(SECRET.as_bytes()), None, None, None).unwrap();
    })
    .await;
    let (status, body) = list(&hs_only, &rs256(&claims("alice"))).await;
    assert_invalid(status, &body, "RS256 on an HS256-only server");
    // And a server without JWT keys refuses every JWT the same way.
    let plain = spawn_app().await;
    let (status, body) = list(&plain, &good).await;
    assert_invalid(status, &body, "no key configured");
}

#[tokio::test]
async fn the_session_exchange_gives_the_page_the_jwts_owner() {
    let app = spawn_jwt_app("rsa_public.pem", true).await;
    let mut c = claims("dana");
    let exp = now() + 1800;
    c["exp"] = json!(exp);
    let jwt = rs256(&c);
    let mine = create(&app, &jwt).await;

    let mut page = Browser::new(&app);
    let resp = page
        .send(page.request(Method::POST, "/api/session").bearer_auth(&jwt))
        .await;
    assert_eq!(resp.status(), 204);
    let cookie = page.set_cookies.last().unwrap().clone();
    assert!(
        cookie.starts_with("cw_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let max_age: u64 = cookie
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age <= 1800 && max_age > 1700,
        "no later than the JWT: {max_age}"
    );

    // With the cookie alone the page lists, opens, streams and posts as dana.
    assert_eq!(page.ids().await, vec![mine.clone()]);
    let conv = Conv {
        id: mine.clone(),
        token: String::new(),
    };
    let mut sse = page.sse(&conv).await;
    assert_eq!(page.post(&conv, "from the page").await, 202);
    let ev = sse.next_event().await.unwrap();
    assert_eq!(ev.kind(), "user.message");
    let made = page.create().await;
    let (_, body) = list(&app, &jwt).await;
    assert_eq!(ids_of(&body), vec![made.id.clone(), mine.clone()]);

    // POST /api/session without a JWT is 401; DELETE ends the session.
    let (status, _) = Browser::new(&app)
        .call(Method::POST, "/api/session", None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = page.call(Method::DELETE, "/api/session", None).await;
    assert_eq!(status, 204);
    assert!(page.cookie.is_none());
    let ended = app
        .http
        .get(app.url("/api/conversations"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 401, "the ended session names nobody");
}
