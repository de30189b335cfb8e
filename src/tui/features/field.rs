//! One-line text fields (the prompt, the response, a preset's name): what typing and pasting may
//! put in them. A paste arrives whole (bracketed paste), so a 100 KB paste is one action and one
//! redraw, not 100,000; it is flattened to one line and cut to what a field holds.

/// The most characters a field holds: far above any prompt the models here take (their
/// contexts are a few thousand tokens), far below what makes editing or drawing slow.
pub const MAX_FIELD_CHARS: usize = 32_768;

/// `raw` as it goes into a field that already holds `present` characters: line breaks and tabs
/// become spaces, other control characters are dropped, and it is cut to the room left. The
/// second value says whether anything was cut.
pub fn pasted(raw: &str, present: usize) -> (String, bool) {
    let room = MAX_FIELD_CHARS.saturating_sub(present);
    let mut text = String::new();
    let mut kept = 0;
    let mut cut = false;
    let mut last_was_cr = false;
    for c in raw.chars() {
        // A Windows line end is one break.
        if c == '\n' && last_was_cr {
            last_was_cr = false;
            continue;
        }
        last_was_cr = c == '\r';
        let c = match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => continue,
            c => c,
        };
        if kept == room {
            cut = true;
            break;
        }
        text.push(c);
        kept += 1;
    }
    (text, cut)
}

/// The status line's note when a paste did not fit.
pub fn cut_notice() -> String {
    format!("pasted text cut: a field holds {MAX_FIELD_CHARS} characters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_become_spaces_and_controls_go() {
        let (text, cut) = pasted("one\r\ntwo\nthree\tfour\u{7}\u{1b}[31m", 0);
        assert_eq!(text, "one two three four[31m");
        assert!(!cut);
    }

    #[test]
    fn a_paste_is_cut_to_the_room_left() {
        let big = "é".repeat(MAX_FIELD_CHARS + 10);
        let (text, cut) = pasted(&big, 5);
        assert_eq!(text.chars().count(), MAX_FIELD_CHARS - 5);
        assert!(cut);
        let (text, cut) = pasted("abc", MAX_FIELD_CHARS);
        assert!(text.is_empty() && cut);
        // Exactly filling the room is not a cut.
        let (text, cut) = pasted("abc", MAX_FIELD_CHARS - 3);
        assert_eq!((text.as_str(), cut), ("abc", false));
    }
}
