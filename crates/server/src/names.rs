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

    /// The character classes of the OpenAPI `Name` pattern, as YAML escapes: what `allowed`
    /// refuses (the joiner too: the schema leaves out the emoji exception), and with it what
    /// `trim` removes, for the first and last character.
    fn openapi_pattern() -> String {
        let refused = |c: char| c == ZERO_WIDTH_JOINER || !allowed(&[c], 0);
        let class = |keep: &dyn Fn(char) -> bool| {
            let mut ranges: Vec<(char, char)> = Vec::new();
            for c in (0..=0x10ffff)
                .filter_map(char::from_u32)
                .filter(|&c| keep(c))
            {
                match ranges.last_mut() {
                    Some((_, end)) if u32::from(*end) + 1 == u32::from(c) => *end = c,
                    _ => ranges.push((c, c)),
                }
            }
            let esc = |c: char| match u32::from(c) {
                n if n <= 0xffff => format!("\\u{n:04X}"),
                n => format!("\\U{n:08X}"),
            };
            ranges
                .iter()
                .map(|&(a, b)| match u32::from(b) - u32::from(a) {
                    0 => esc(a),
                    1 => esc(a) + &esc(b),
                    _ => format!("{}-{}", esc(a), esc(b)),
                })
                .collect::<String>()
        };
        let inner = class(&refused);
        let edge = class(&|c| refused(c) || c.is_whitespace());
        format!("^[^{edge}](?:[^{inner}]*[^{edge}])?$")
    }

    #[test]
    fn the_openapi_name_pattern_is_this_rule() {
        let openapi = include_str!("../../../docs/openapi.yaml");
        let line = format!("pattern: \"{}\"", openapi_pattern());
        assert!(
            openapi.contains(&line),
            "docs/openapi.yaml's Name schema must have this line:\n{line}"
        );
    }
}
