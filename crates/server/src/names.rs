//! Names people read: display names, group titles and device names. Each is normalised to
//! NFC and trimmed, holds 1-64 characters, and may not contain control, format or line and
//! paragraph separator characters (Unicode Cc, Cf, Zl, Zp) nor the letters that draw as
//! nothing (Hangul fillers, the blank Braille pattern). Those reorder text (U+202E), hide
//! it (U+200B), break lines, or make a name that looks like someone else's or like none.
//! The one exception is the zero-width joiner inside an emoji sequence (👩‍💻).

use crate::error::{ApiError, ApiResult};
use confab_proto::limits::DISPLAY_NAME_MAX;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

const ZERO_WIDTH_JOINER: char = '\u{200d}';
/// Letters with no visible shape.
const BLANK_LETTERS: [char; 5] = ['\u{115f}', '\u{1160}', '\u{3164}', '\u{ffa0}', '\u{2800}'];

/// Which name, for the error message.
#[derive(Debug, Clone, Copy)]
pub enum Name {
    /// A user's display name.
    Display,
    /// A group's title.
    Title,
    /// A device's name.
    Device,
}

impl Name {
    fn plural(self) -> &'static str {
        match self {
            Self::Display => "display names",
            Self::Title => "group titles",
            Self::Device => "device names",
        }
    }

    /// `raw` as it will be stored and shown, or `invalid_request` saying why not.
    pub fn check(self, raw: &str) -> ApiResult<String> {
        let name: String = raw.nfc().collect();
        let name = name.trim();
        let chars: Vec<char> = name.chars().collect();
        if chars.is_empty() || chars.len() > DISPLAY_NAME_MAX {
            return Err(ApiError::invalid(format!(
                "{} are 1-{DISPLAY_NAME_MAX} characters",
                self.plural()
            )));
        }
        if let Some(bad) = (0..chars.len()).find(|&i| !allowed(&chars, i)) {
            return Err(ApiError::invalid(format!(
                "{} may not contain invisible, control or line-break characters (U+{:04X})",
                self.plural(),
                u32::from(chars[bad])
            )));
        }
        Ok(name.to_owned())
    }
}

fn allowed(chars: &[char], i: usize) -> bool {
    let c = chars[i];
    if c == ZERO_WIDTH_JOINER {
        let emoji = |c: Option<&char>| c.is_some_and(|c| c.is_emoji_char() && !c.is_ascii());
        // The previous character may be a variation selector or skin tone after the emoji.
        let before = chars[..i]
            .iter()
            .rev()
            .find(|c| !matches!(c, '\u{fe0f}' | '\u{1f3fb}'..='\u{1f3ff}'));
        return emoji(before) && emoji(chars.get(i + 1));
    }
    !BLANK_LETTERS.contains(&c)
        && !matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in [
            "\u{202e}evil",
            "ad\u{200b}a",
            "two\nlines",
            "nul\u{0}",
            "tab\there",
            "\u{2028}",
            "\u{3164}",
            "\u{2800}",
            "a\u{200d}b",
            "\u{feff}bom",
            "",
            "   ",
        ] {
            assert!(Name::Display.check(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Name::Display.check(&"x".repeat(65)).is_err());
    }

    #[test]
    fn names_are_nfc_and_trimmed_and_emoji_sequences_stay() {
        assert_eq!(Name::Display.check(" Ade\u{301}le ").unwrap(), "Ad\u{e9}le");
        for good in ["👩‍💻 Ada", "👨‍👩‍👧", "Zoë", "李小龍", "Ada Lovelace", "❤️‍🔥"]
        {
            assert_eq!(Name::Display.check(good).unwrap(), good);
        }
        assert_eq!(Name::Title.check(&"x".repeat(64)).unwrap().len(), 64);
    }
}
