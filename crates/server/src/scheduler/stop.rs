//! Stop strings over streamed text, without leaking partial matches.
//!
//! Text is released only when no stop string can still match through it: the longest tail of
//! the pending text that is a prefix of some stop string is held back until the next token
//! shows whether it completes a match. A match ends generation and drops itself and all after.

#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What one push released.
#[derive(Debug, PartialEq, Eq)]
pub struct Released {
    pub text: String,
    pub stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> StopMatcher {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds newly decoded text; returns what may be shown and whether a stop string matched.
    pub fn push(&mut self, text: &str) -> Released {
        self.held.push_str(text);
        if self.stops.is_empty() {
            return Released {
                text: std::mem::take(&mut self.held),
                stopped: false,
            };
        }
        let first_match = self.stops.iter().filter_map(|s| self.held.find(s)).min();
        if let Some(at) = first_match {
            let text = self.held[..at].to_string();
            self.held.clear();
            return Released {
                text,
                stopped: true,
            };
        }
        let keep = self.partial_tail_len();
        let split = self.held.len() - keep;
        let text = self.held[..split].to_string();
        self.held.drain(..split);
        Released {
            text,
            stopped: false,
        }
    }

    /// Generation ended without a match: the held text is ordinary text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Bytes of the longest tail of `held` that some stop string starts with.
    fn partial_tail_len(&self) -> usize {
        let held = self.held.as_str();
        let mut best = 0;
        for stop in &self.stops {
            // A full match was ruled out, so only proper prefixes of `stop` can be pending.
            let max = (stop.len() - 1).min(held.len());
            for len in (best + 1..=max).rev() {
                let start = held.len() - len;
                if held.is_char_boundary(start) && stop.starts_with(&held[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let r = m.push(p);
            out.push_str(&r.text);
            if r.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn no_stops_pass_everything() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }

    #[test]
    fn match_across_pieces_is_cut() {
        assert_eq!(
            run(&["END"], &["hello E", "N", "D and more"]),
            ("hello ".into(), true)
        );
    }

    #[test]
    fn partial_prefix_is_held_not_leaked() {
        let mut m = StopMatcher::new(vec!["</s>".into()]);
        let r = m.push("abc</");
        assert_eq!(r.text, "abc");
        assert!(!r.stopped);
        let r = m.push("x");
        assert_eq!(r.text, "</x");
        assert!(!r.stopped);
    }

    #[test]
    fn held_text_is_released_at_the_end() {
        assert_eq!(run(&["stop"], &["a st"]), ("a st".into(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(
            run(&["cd", "b"], &["abcd"]),
            ("a".into(), true),
            "b comes before cd"
        );
    }

    #[test]
    fn multibyte_text_is_split_on_char_boundaries() {
        // "é" is 2 bytes; a stop beginning with its second byte cannot exist in UTF-8, but
        // the check must not slice inside a character.
        assert_eq!(run(&["éz"], &["aé", "é", "b"]), ("aééb".into(), false));
        assert_eq!(run(&["éz"], &["aé", "z"]), ("a".into(), true));
    }

    #[test]
    fn stop_at_the_very_start() {
        assert_eq!(run(&["\n"], &["\nabc"]), ("".into(), true));
    }
}
