//! What the offline demo bot says. It recognises a few topics (greetings, help, chatwire
//! and its three patterns, a long story to interrupt, `/count N`, `/echo TEXT`) and
//! otherwise answers from what the user wrote.

use std::collections::VecDeque;

/// The words of one reply, produced lazily (a `/count 100000` is never built up front).
pub enum Script {
    Count {
        next: u32,
        last: u32,
    },
    Words(VecDeque<String>),
    /// Pieces sent verbatim, whitespace included (`/echo`): they concatenate to the text.
    Pieces(VecDeque<String>),
}

impl Iterator for Script {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        match self {
            Script::Count { .. } => self.count_next().map(|n| n.to_string()),
            Script::Words(words) | Script::Pieces(words) => words.pop_front(),
        }
    }
}

impl Script {
    /// The next piece of the reply as it is sent: the word, after a space unless it is
    /// the first. One allocation per piece (this runs once per token).
    pub fn next_piece(&mut self, first: bool) -> Option<String> {
        match self {
            Script::Count { .. } => {
                let n = self.count_next()?;
                Some(if first {
                    n.to_string()
                } else {
                    format!(" {n}")
                })
            }
            Script::Words(words) => {
                let word = words.pop_front()?;
                Some(if first { word } else { format!(" {word}") })
            }
            Script::Pieces(pieces) => pieces.pop_front(),
        }
    }

    fn count_next(&mut self) -> Option<u32> {
        let Script::Count { next, last } = self else {
            return None;
        };
        if *next > *last {
            return None;
        }
        *next += 1;
        Some(*next - 1)
    }
}

/// `text` cut at whitespace: each piece is a word and the whitespace after it, so the
/// pieces concatenate to exactly `text` (newlines and Markdown kept).
fn pieces(text: &str) -> Script {
    let mut out = VecDeque::new();
    let mut start = 0;
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if prev_space && !space && i > start && !text[start..i].trim().is_empty() {
            out.push_back(text[start..i].to_string());
            start = i;
        }
        prev_space = space;
    }
    if start < text.len() {
        out.push_back(text[start..].to_string());
    }
    Script::Pieces(out)
}

fn words(text: &str) -> Script {
    Script::Words(
        text.split(' ')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect(),
    )
}

/// Who is speaking: the same script, but each says truthfully what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// The built-in offline provider (in process).
    Offline,
    /// The built-in simulated NLP service (every word a signed webhook).
    Simulated,
}

impl Voice {
    fn who(self) -> &'static str {
        match self {
            Voice::Offline => {
                "I am the offline demo bot: I run inside chatwire with no network, so I answer \
                 from a short script."
            }
            Voice::Simulated => {
                "I am the simulated NLP service: I run beside chatwire, answer from a short \
                 script, and send every word back to it as a signed webhook."
            }
        }
    }

    fn greeting(self) -> &'static str {
        match self {
            Voice::Offline => GREETING,
            Voice::Simulated => SIMULATED_GREETING,
        }
    }
}

/// The bot's script for the user's latest message; `turns` counts the history so far.
pub fn script_for(message: &str, turns: usize, voice: Voice) -> Script {
    // Exactly what follows `/echo `, untrimmed: tests send Markdown and hostile text this way.
    if let Some(text) = message.trim_start().strip_prefix("/echo ") {
        return pieces(text);
    }
    let trimmed = message.trim();
    if let Some(rest) = trimmed.strip_prefix("/count") {
        return match rest.trim().parse::<u32>() {
            Ok(n) if (1..=100_000).contains(&n) => Script::Count { next: 1, last: n },
            _ => words(
                "`/count N` takes a whole number N from 1 to 100000, for example `/count 200`.",
            ),
        };
    }
    let lower = trimmed.to_lowercase();
    let has = |keys: &[&str]| keys.iter().any(|k| lower.contains(k));
    let text = if lower.is_empty() {
        "I did not catch anything there. Type a message, or `help` to see what I can do."
            .to_string()
    } else if has(&["story"]) {
        STORY.to_string()
    } else if lower == "help" || lower == "/help" || has(&["what can you do", "help me"]) {
        HELP.to_string()
    } else if has(&["webhook"]) {
        WEBHOOKS.to_string()
    } else if has(&[
        "sse",
        "server-sent",
        "server sent",
        "eventsource",
        "token by token",
    ]) {
        SSE.to_string()
    } else if has(&["websocket", "typing", "interrupt", "stop"]) {
        WEBSOCKET.to_string()
    } else if has(&[
        "chatwire",
        "who are you",
        "what are you",
        "what is this",
        "pattern",
    ]) {
        ABOUT.to_string()
    } else if has(&["thank"]) {
        "You are welcome! Ask me for a story if you want to try the Stop button.".to_string()
    } else if is_greeting(&lower) {
        if turns <= 1 {
            voice.greeting().to_string()
        } else {
            "Hello again! What shall we try next? `help` lists a few ideas.".to_string()
        }
    } else {
        echo(trimmed, voice)
    };
    words(&text)
}

fn is_greeting(lower: &str) -> bool {
    let first = lower
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    matches!(
        first,
        "hi" | "hello" | "hey" | "hallo" | "howdy" | "greetings" | "yo"
    ) || lower.starts_with("good morning")
        || lower.starts_with("good evening")
        || lower.starts_with("good afternoon")
}

/// An answer built from the user's own words, for anything the bot has no topic for.
fn echo(message: &str, voice: Voice) -> String {
    let words: Vec<&str> = message.split_whitespace().collect();
    let quoted: String = if words.len() > 12 {
        format!("{} …", words[..12].join(" "))
    } else {
        words.join(" ")
    };
    let longest = words
        .iter()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .max_by_key(|w| w.chars().count())
        .unwrap_or("that");
    if message.ends_with('?') {
        format!(
            "You asked: “{quoted}” That is a fair question, and a real language model would \
             take it from here. {} I cannot look things up, but I can tell you that your \
             question has {} words and its longest is “{longest}”. Plug in an \
             OpenAI-compatible provider (see docs/providers.md) for real answers, or ask me \
             about webhooks, SSE or WebSockets.",
            voice.who(),
            words.len()
        )
    } else {
        format!(
            "You wrote: “{quoted}” {} I noticed “{longest}” — tell me more, ask for a \
             story, or type `help` to see what I can show you.",
            voice.who()
        )
    }
}

const GREETING: &str = "Hello! I am chatwire's offline demo bot. I stream this reply to you \
word by word over Server-Sent Events, while a WebSocket carries typing and the Stop button. \
Type `help` to see what you can try.";

const SIMULATED_GREETING: &str = "Hello! I am chatwire's simulated NLP service. Every word \
of this reply went to chatwire as a signed webhook (POST /webhooks/nlp), which it verified, \
checked for duplicates and handed to this conversation's actor, which streams it to you over \
Server-Sent Events. Type `help` to see what you can try.";

const HELP: &str = "Here is what you can try:\n\n\
• `tell me a story` — a long reply, so you can press Stop (or Escape) halfway.\n\
• `/count 50` — I count to 50, one number per token.\n\
• `what is chatwire` — what this server does.\n\
• `how do webhooks work`, `what is SSE`, `websocket` — the three patterns, one at a time.\n\
• Open this page in a second tab and type: the other tab shows that you are typing.\n\
• Reload in the middle of a reply: it goes on from where it was, no word lost.";

const ABOUT: &str = "chatwire is a chatbot streaming backend that shows the three ways systems \
talk in real time. Webhooks: an NLP provider calls us back when its work is done, and we \
verify the signature, drop duplicates and route the result. Server-Sent Events: your browser \
receives my reply token by token and resumes after a dropped connection without losing or \
repeating a word. WebSocket: typing indicators both ways, my state (thinking or streaming), \
and interrupting me mid-reply. Behind them, one actor per conversation decides everything in \
one order, so no token can arrive after a Stop.";

const WEBHOOKS: &str = "Webhooks are calls the other way round: instead of us waiting on an \
open connection, the NLP provider POSTs its result to us when it is ready. chatwire checks \
the Standard Webhooks signature (an HMAC-SHA256 over the id, the timestamp and the raw body), \
refuses anything unsigned or older than five minutes, answers a repeated delivery without \
applying it twice, and hands the result to the conversation's actor, which streams it to \
you. Pick the simulated NLP provider in the menu to watch it happen without any network.";

const SSE: &str = "Server-Sent Events are a plain HTTP response that never ends: the server \
writes one event after another and the browser's EventSource reads them. Every event has a \
number. If the connection drops, the browser reconnects with the last number it saw, and \
chatwire replays exactly what came after it: no gap, no duplicate. That is how this reply \
reaches you, one word per event.";

const WEBSOCKET: &str = "The WebSocket is the two-way channel beside the stream. Your browser \
says when you are typing, and every other tab or device on this conversation sees it. The \
server says what I am doing: thinking before my first word, then streaming. And when you \
press Stop or Escape, the interrupt travels over it: the conversation's actor cancels the \
work upstream, keeps the words already sent, and tells every tab that the reply was \
interrupted.";

const STORY: &str = "Once upon a time, in a data centre humming at the edge of a quiet town, \
there lived a small conversation actor named Wren. Wren had one job: to own a single \
conversation, and to own it completely. Nobody else could change it. The web handlers could \
ask, the WebSocket sessions could ask, even the grand NLP providers far across the network \
could ask, but only Wren decided, one message at a time, in one order.\n\n\
Every morning the messages came in through the mailbox, which was small on purpose. \"A \
bounded mailbox,\" the old scheduler had told Wren, \"keeps you honest. If the queue is full, \
say so. Never promise what you cannot keep.\" So Wren answered every request, and when it \
was too busy it said so plainly, and the clients came back a moment later.\n\n\
One day a user asked for a story, a very long one. Wren called upon the provider, and the \
words began to flow, one by one, each given a number and written once into the little ring \
of memory that Wren kept for those who came late. The browser drank the words as they \
arrived. Then the train went into a tunnel, and the connection dropped.\n\n\
Wren did not stop. The story was not for the connection; it was for the conversation. The \
words kept coming, each numbered, each kept. When the train came out of the tunnel, the \
browser knocked again and said: \"The last word I saw was number four hundred and twelve.\" \
And Wren, without a pause, handed over number four hundred and thirteen and everything after \
it, not one word missing, not one word twice.\n\n\
Later that evening a second tab opened on the same conversation, then a phone. Wren sent the \
same words to all of them, serialised once and shared, because words are cheap when you do \
not copy them. When the user began to type on the phone, the laptop showed three small dots, \
and when the user stopped typing the dots went away after five quiet seconds.\n\n\
And then the user pressed Stop. Wren did not merely stop listening; it reached across the \
network and cancelled the provider's work, so that no more words were generated and no more \
were billed. It wrote down exactly the words already delivered, marked the reply \
interrupted, and told every tab at once. Not a single word slipped through after the Stop, \
because there was only ever one Wren, deciding everything in one order.\n\n\
The townsfolk say that if you listen closely to the humming of the data centre, you can \
still hear Wren counting: one, two, three, each number exactly once. And that, more or less, \
is how chatwire works. The end.";

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: Script) -> String {
        s.collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn counts_exactly() {
        assert_eq!(text(script_for("/count 5", 1, Voice::Offline)), "1 2 3 4 5");
        assert!(text(script_for("/count 0", 1, Voice::Offline)).contains("from 1 to 100000"));
        assert!(text(script_for("/count 100001", 1, Voice::Offline)).contains("from 1 to 100000"));
        assert_eq!(
            script_for("/count 100000", 1, Voice::Offline).count(),
            100_000
        );
    }

    fn pieces_of(s: Script) -> Vec<String> {
        let mut s = s;
        let mut out = Vec::new();
        while let Some(p) = s.next_piece(out.is_empty()) {
            out.push(p);
        }
        out
    }

    #[test]
    fn echoes_exactly_in_pieces_at_whitespace() {
        let text = "# Title\n\n```rust\nfn main() {}\n```\n  - [x] *done*  \n\n<b>x</b> ";
        let got = pieces_of(script_for(&format!("/echo {text}"), 1, Voice::Offline));
        assert_eq!(got.concat(), text);
        assert!(got.len() >= 8, "several pieces: {got:?}");
        assert!(
            got[..got.len() - 1]
                .iter()
                .all(|p| p.ends_with(char::is_whitespace))
        );
        assert_eq!(
            pieces_of(script_for("/echo  two  spaces", 1, Voice::Offline)).concat(),
            " two  spaces"
        );
        assert_eq!(pieces_of(script_for("/echo x", 1, Voice::Offline)), ["x"]);
    }

    #[test]
    fn answers_topics_and_echoes_the_rest() {
        assert!(text(script_for("Hello there", 1, Voice::Offline)).starts_with("Hello!"));
        assert!(text(script_for("help", 1, Voice::Offline)).contains("/count"));
        assert!(text(script_for("tell me a story", 1, Voice::Offline)).contains("Wren"));
        assert!(
            text(script_for("why is the sky blue?", 1, Voice::Offline))
                .contains("why is the sky blue?")
        );
    }

    #[test]
    fn each_voice_says_what_it_is() {
        let sim = text(script_for("hi", 1, Voice::Simulated));
        assert!(sim.contains("simulated NLP service") && sim.contains("signed webhook"));
        assert!(text(script_for("hi", 1, Voice::Offline)).contains("offline demo bot"));
        let echo = text(script_for("tomatoes", 3, Voice::Simulated));
        assert!(echo.contains("simulated NLP service") && !echo.contains("offline"));
    }
}
