//! The real-model tier: chatwire's `openai` kind against llama.cpp's `llama-server` running
//! SmolLM2-135M-Instruct (see `llama.rs` and `scripts/real-llm`). A reply streams token by
//! token through chatwire; an interrupt stops generation at the server within 2 s; two
//! conversations generate at once. Time to first token and tokens per second are printed
//! (figures for docs/benchmarks.md), never asserted.

use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::llama::Llama;

async fn setup(llama: &Llama, max_tokens: Option<u32>) -> TestApp {
    let base_url = llama.v1();
    spawn_app_with(|c| {
        c.providers.push(chatwire::config::ProviderConfig {
            name: "local".into(),
            kind: "openai".into(),
            base_url: Some(base_url),
            model: Some("smollm2".into()),
            max_tokens,
            temperature: Some(0.2),
            ..Default::default()
        })
    })
    .await
}

/// Every event of the next reply with the time it arrived.
async fn timed_reply(sse: &mut SseClient) -> Vec<(Instant, SseItem)> {
    let mut out = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), sse.next_event())
            .await
            .expect("the real model answers within 60 s")
            .expect("the stream goes on");
        let end = is_reply_end(&ev);
        out.push((Instant::now(), ev));
        if end {
            return out;
        }
    }
}

#[tokio::test]
async fn a_real_model_streams_a_reply_through_chatwire() {
    let Some(llama) = Llama::start("a_real_model_streams_a_reply_through_chatwire").await else {
        return;
    };
    let app = setup(&llama, Some(64)).await;
    let (conv, mut sse) = app.open_with("local").await;
    let sent = Instant::now();
    let reply = app.post_ok(&conv, "What is the capital of France?").await;
    let events = timed_reply(&mut sse).await;
    let (_, end) = events.last().unwrap();
    let deltas: Vec<_> = events
        .iter()
        .filter(|(_, e)| e.kind() == "reply.delta")
        .collect();
    let evs: Vec<SseItem> = events.iter().map(|(_, e)| e.clone()).collect();
    // A whole answer, or one cut at 64 tokens that says so; never silently short.
    match end.kind() {
        "reply.completed" => {}
        "reply.failed" => assert!(end.field("error").contains("token limit"), "{end:?}"),
        other => panic!("the reply ended with {other}: {end:?}"),
    }
    assert!(deltas.len() >= 2, "streamed token by token: {evs:?}");
    assert_eq!(joined_deltas(&evs, &reply), end.field("text"));
    assert!(!end.field("text").trim().is_empty());
    let stored = app.last_message(&conv).await;
    assert_eq!(stored["text"], end.field("text"));

    let first = deltas[0].0 - sent;
    let span = deltas.last().unwrap().0 - deltas[0].0;
    let rate = (deltas.len() - 1) as f64 / span.as_secs_f64().max(1e-3);
    eprintln!(
        "real model through chatwire: time to first token {:.0} ms, {} deltas, {rate:.1} tokens/s",
        first.as_secs_f64() * 1000.0,
        deltas.len()
    );
}

#[tokio::test]
async fn an_interrupt_stops_generation_at_the_server_within_2_s() {
    let Some(llama) = Llama::start("an_interrupt_stops_generation_at_the_server_within_2_s").await
    else {
        return;
    };
    // No `max_tokens`: the server's own limit (-n 128) is what it would run to.
    let app = setup(&llama, None).await;
    let (conv, mut sse) = app.open_with("local").await;
    let reply = app
        .post_ok(
            &conv,
            "Write a long story about a dragon who learns to bake bread.",
        )
        .await;
    sse.events_until(|e| e.kind() == "reply.delta").await;
    assert_eq!(llama.busy_slots().await, 1, "the server is generating");

    let interrupted = Instant::now();
    assert_eq!(app.interrupt(&conv).await.as_deref(), Some(reply.as_str()));
    let end = sse.reply_end().await;
    assert_eq!(end.kind(), "reply.interrupted");
    let mut stopped = None;
    while interrupted.elapsed() < Duration::from_secs(10) {
        if llama.busy_slots().await == 0 {
            stopped = Some(interrupted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = stopped.expect("the server stops generating");
    eprintln!("real model: generation stopped {stopped:?} after the interrupt");
    assert!(
        stopped < Duration::from_secs(2),
        "stopped after {stopped:?}"
    );
    // Stopped by the closed connection, not by running out of tokens.
    assert!(
        llama
            .logs_within("cancel task", Duration::from_secs(5))
            .await,
        "the server cancelled the task:\n{}",
        llama.log()
    );
    assert_eq!(app.last_message(&conv).await["status"], "interrupted");
}

#[tokio::test]
async fn two_conversations_generate_at_once() {
    let Some(llama) = Llama::start("two_conversations_generate_at_once").await else {
        return;
    };
    let app = setup(&llama, Some(48)).await;
    let (a, mut sse_a) = app.open_with("local").await;
    let (b, mut sse_b) = app.open_with("local").await;
    app.post_ok(&a, "Tell me about the sea.").await;
    app.post_ok(&b, "Tell me about the mountains.").await;
    let (ea, eb) = tokio::join!(timed_reply(&mut sse_a), timed_reply(&mut sse_b));
    for events in [&ea, &eb] {
        let (_, end) = events.last().unwrap();
        assert!(
            end.kind() == "reply.completed" || end.field("error").contains("token limit"),
            "{end:?}"
        );
        assert!(!end.field("text").trim().is_empty());
    }
    // Both streamed during the same time (two slots), not one after the other.
    let span = |ev: &[(Instant, SseItem)]| {
        let d: Vec<Instant> = ev
            .iter()
            .filter(|(_, e)| e.kind() == "reply.delta")
            .map(|(t, _)| *t)
            .collect();
        (d[0], *d.last().unwrap())
    };
    let ((a0, a1), (b0, b1)) = (span(&ea), span(&eb));
    assert!(a0 < b1 && b0 < a1, "the two replies overlap in time");
}
