//! The chat page: `/` is an empty new chat (nothing stored), `/c/{id}` renders its history on the server
//! (escaped), and the page's hooks and assets are there.

use reqwest::redirect::Policy;

use crate::helpers::*;
use crate::streaming::wait_complete;

#[tokio::test]
async fn root_is_an_empty_chat_and_the_page_renders_its_history() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let resp = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "`/` stores nothing and moves nowhere");
    assert!(resp.headers().get("set-cookie").is_none());
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("data-conversation-id=\"\"")
    );
    // The page creates the conversation with its first message (and gets the session).
    let resp = client
        .post(app.url("/api/conversations"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("cw_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let body: serde_json::Value = resp.json().await.unwrap();
    let conv = Conv {
        id: body["id"].as_str().unwrap().to_string(),
        token: body["token"].as_str().unwrap().to_string(),
    };
    let id = conv.id.clone();
    let location = format!("/c/{id}");

    app.post_ok(&conv, "<script>alert(1)</script> hello?").await;
    wait_complete(&app, &conv).await;

    let page = client
        .get(app.url(&location))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    for hook in [
        "composer",
        "send",
        "stop",
        "messages",
        "typing-indicator",
        "bot-state",
        "connection",
    ] {
        assert!(
            html.contains(&format!("data-testid=\"{hook}\"")),
            "hook {hook}"
        );
    }
    assert!(
        html.contains("alert(1)") && html.contains("script&#62;"),
        "user text escaped"
    );
    assert!(!html.contains("<script>alert(1)"), "never raw");
    assert!(html.contains("data-role=\"assistant\" data-status=\"complete\""));
    assert!(
        html.contains("Offline demo bot"),
        "the offline bot is labelled"
    );
    assert!(html.contains(&format!("data-conversation-id=\"{id}\"")));

    // Without the cookie the page reveals nothing.
    let stranger = client.get(app.url(&location)).send().await.unwrap();
    assert_eq!(stranger.status(), 404);
    assert!(!stranger.text().await.unwrap().contains("alert"));

    // One markup for a message: the history's and the script's <template> copy.
    assert!(html.contains("<template id=\"message-template\">"));
    // (path, content type, linked from the page rather than imported by app.js)
    for (path, kind, linked) in [
        ("/static/app.js", "javascript", true),
        ("/static/messages.js", "javascript", false),
        ("/static/feed.js", "javascript", false),
        ("/static/vendor/marked.umd.js", "javascript", true),
        ("/static/vendor/purify.min.js", "javascript", true),
        ("/static/app.css", "css", true),
        ("/static/markdown.css", "css", true),
    ] {
        assert_eq!(html.contains(path), linked, "{path}");
        let r = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().contains(kind));
    }
    let missing = client.get(app.url("/static/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
