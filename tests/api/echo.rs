//! `/echo TEXT`: the offline bot (and the simulated service, which shares its script)
//! answers with exactly TEXT, in several deltas cut at whitespace — the way browser tests
//! send Markdown and hostile text without a model.

use crate::helpers::*;

const MARKDOWN: &str = "# Title\n\nSome **bold** and `code`.\n\n```js\nlet a = 1;\n\n  indented\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<img src=x onerror=alert(1)>  trailing  \n";

async fn echo_through(app: &TestApp, conv: &Conv) {
    let mut first = app.sse(conv, None).await;
    let mut second = app.sse(conv, None).await;
    let reply = app.post_ok(conv, &format!("/echo {MARKDOWN}")).await;
    for sse in [&mut first, &mut second] {
        let events = sse.events_until(is_reply_end).await;
        assert_eq!(events[0].field("text"), format!("/echo {MARKDOWN}"));
        let end = events.last().expect("an end");
        assert_eq!(end.kind(), "reply.completed");
        assert_eq!(end.field("text"), MARKDOWN, "byte for byte");
        assert_eq!(joined_deltas(&events, &reply), MARKDOWN);
        let deltas: Vec<&str> = events
            .iter()
            .filter(|e| e.kind() == "reply.delta")
            .map(|e| e.field("text"))
            .collect();
        assert!(deltas.len() >= 10, "several deltas: {deltas:?}");
        for d in &deltas[..deltas.len() - 1] {
            assert!(d.ends_with(char::is_whitespace), "cut at whitespace: {d:?}");
        }
    }
    let stored = app.last_message(conv).await;
    assert_eq!(stored["text"], MARKDOWN);
    assert_eq!(stored["status"], "complete");
}

#[tokio::test]
async fn echo_answers_exactly_the_text_in_pieces() {
    let app = spawn_app().await;
    let conv = app.create().await;
    echo_through(&app, &conv).await;
}

#[tokio::test]
async fn the_simulated_service_echoes_exactly_too() {
    let app = spawn_app_with(|c| {
        c.providers
            .push(chatwire::config::ProviderConfig::simulated());
    })
    .await;
    let conv = app.create_with("simulated").await;
    echo_through(&app, &conv).await;
}
