//! The search language, the same for every backend: how text is cut into words (for the
//! index, for queries and for highlighting), and how a query is read. Backends index the
//! words this module makes, never their own tokenizer's, so both stores find the same
//! messages and no query text reaches SQL as syntax.
//!
//! A word is a run of letters and digits, lowercased, with accents removed (`Café` and
//! `cafe` are one word). Chinese and Japanese have no spaces between words, so each of
//! their characters is a word of its own and a run of them is searched as a phrase: `東京`
//! finds `東京都` (a substring match, which also works for words of one or two characters,
//! where trigrams cannot). Thai, Lao, Khmer and Myanmar runs stay whole words.

use std::ops::Range;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Characters of a query, at most.
pub const QUERY_CHARS_MAX: usize = 256;
/// Terms (words, phrases) of a query, at most.
pub const TERMS_MAX: usize = 10;
/// A prefix (`cha*`) has at least this many characters: shorter ones would match half
/// the index.
pub const PREFIX_CHARS_MIN: usize = 2;
/// Longer words are cut here, in the index and in queries alike.
const WORD_CHARS_MAX: usize = 64;

/// A query, read: every term must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// What to find.
    pub terms: Vec<Term>,
}

/// One term: a word, or words that must stand in this order (a phrase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Its words, normalised; one or more.
    pub words: Vec<String>,
    /// The last word may be the start of a longer one (`cha*`).
    pub prefix: bool,
}

/// Why a query cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Empty, or past [`QUERY_CHARS_MAX`].
    #[error("q must be 1 to {QUERY_CHARS_MAX} characters")]
    Length,
    /// Nothing in it is a word.
    #[error("q has no words to search for (letters or digits)")]
    NoWords,
    /// Past [`TERMS_MAX`].
    #[error("q has more than {TERMS_MAX} words or phrases")]
    TooManyTerms,
    /// A prefix shorter than [`PREFIX_CHARS_MIN`].
    #[error("a prefix (word*) needs at least {PREFIX_CHARS_MIN} letters")]
    ShortPrefix,
}

/// The words of `text` with where each stands in it (byte ranges).
pub fn words(text: &str) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let flush = |out: &mut Vec<(Range<usize>, String)>, range: Range<usize>| {
        let word = normalize(&text[range.clone()]);
        if !word.is_empty() {
            out.push((range, word));
        }
    };
    for (at, c) in text.char_indices() {
        if splits_alone(c) {
            if let Some(s) = start.take() {
                flush(&mut out, s..at);
            }
            flush(&mut out, at..at + c.len_utf8());
        } else if c.is_alphanumeric() || is_combining_mark(c) {
            start.get_or_insert(at);
        } else if let Some(s) = start.take() {
            flush(&mut out, s..at);
        }
    }
    if let Some(s) = start {
        flush(&mut out, s..text.len());
    }
    out
}

/// The words of `text`, in order, as the index stores them.
pub fn document(text: &str) -> Vec<String> {
    words(text).into_iter().map(|(_, word)| word).collect()
}

/// Reads a query: words (all must be found), `"a phrase"`, and `prefix*`. Anything else
/// between words (punctuation, `-`, `:`) only separates them; a chunk like `e-mail` is the
/// phrase `e mail`, as it was indexed.
pub fn parse(q: &str) -> Result<Query, QueryError> {
    let q = q.trim();
    if q.is_empty() || q.chars().count() > QUERY_CHARS_MAX {
        return Err(QueryError::Length);
    }
    let mut terms = Vec::new();
    for (i, chunk) in q.split('"').enumerate() {
        if i % 2 == 1 {
            push_term(&mut terms, chunk)?;
        } else {
            for part in chunk.split_whitespace() {
                push_term(&mut terms, part)?;
            }
        }
    }
    if terms.is_empty() {
        return Err(QueryError::NoWords);
    }
    if terms.len() > TERMS_MAX {
        return Err(QueryError::TooManyTerms);
    }
    Ok(Query { terms })
}

/// Adds the term in `chunk` (a phrase's inside, or one bare word), if it has words.
fn push_term(terms: &mut Vec<Term>, chunk: &str) -> Result<(), QueryError> {
    let trimmed = chunk.trim_end();
    let prefix = trimmed.ends_with('*');
    let words = document(trimmed);
    let Some(last) = words.last() else {
        return Ok(());
    };
    // A prefix of a Chinese or Japanese run is already a substring search.
    let prefix = prefix && !last.chars().all(splits_alone);
    if prefix && last.chars().count() < PREFIX_CHARS_MIN {
        return Err(QueryError::ShortPrefix);
    }
    if !terms
        .iter()
        .any(|t: &Term| t.words == words && t.prefix == prefix)
    {
        terms.push(Term { words, prefix });
    }
    Ok(())
}

/// Does a query's word match a document's word (as a prefix, for a term's last word)?
fn word_matches(term_word: &str, prefix: bool, word: &str) -> bool {
    if prefix {
        word.starts_with(term_word)
    } else {
        word == term_word
    }
}

/// A short passage of `text` around the first place `query` matches, cut into plain and
/// matched parts (every matched word in it marked). `None` if no word of it matches.
pub fn snippet(text: &str, query: &Query, chars: usize) -> Option<Vec<(String, bool)>> {
    let found = words(text);
    let mut marked = vec![false; found.len()];
    for term in &query.terms {
        let n = term.words.len();
        for start in 0..found.len().saturating_sub(n - 1) {
            let hit = term.words.iter().enumerate().all(|(k, w)| {
                let last = k + 1 == n;
                word_matches(w, term.prefix && last, &found[start + k].1)
            });
            if hit {
                marked[start..start + n].fill(true);
            }
        }
    }
    let first = marked.iter().position(|m| *m)?;
    // A window of about `chars` characters, starting a little before the first match.
    let lead = chars / 4;
    let begin = text[..found[first].0.start]
        .char_indices()
        .rev()
        .nth(lead.saturating_sub(1))
        .map_or(0, |(at, _)| at);
    let end = text[begin..]
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(at, _)| begin + at);
    let mut parts: Vec<(String, bool)> = Vec::new();
    let mut at = begin;
    let push = |parts: &mut Vec<(String, bool)>, piece: &str, hit: bool| {
        if piece.is_empty() {
            return;
        }
        match parts.last_mut() {
            Some((text, was)) if *was == hit => text.push_str(piece),
            _ => parts.push((piece.to_owned(), hit)),
        }
    };
    if begin > 0 {
        push(&mut parts, "…", false);
    }
    let mut after_match = false;
    for ((range, _), hit) in found.iter().zip(&marked) {
        if !*hit || range.end <= begin || range.start >= end {
            continue;
        }
        let (start, stop) = (range.start.max(begin), range.end.min(end));
        // Matched words with only spaces between (a phrase) are marked as one.
        let gap = &text[at..start];
        push(
            &mut parts,
            gap,
            after_match && gap.chars().all(char::is_whitespace),
        );
        push(&mut parts, &text[start..stop], true);
        (at, after_match) = (stop, true);
    }
    push(&mut parts, &text[at..end], false);
    if end < text.len() {
        push(&mut parts, "…", false);
    }
    Some(parts)
}

/// Lowercased, accents removed, cut at [`WORD_CHARS_MAX`]. Composed again after the
/// accents go, so Hangul syllables stay syllables.
fn normalize(word: &str) -> String {
    let bare: String = word.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    bare.nfc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .take(WORD_CHARS_MAX)
        .collect()
}

/// Chinese and Japanese characters: each is a word of its own.
fn splits_alone(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // halfwidth Katakana
        | 0x20000..=0x3134F  // CJK extensions B to G
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(words: &[&str], prefix: bool) -> Term {
        Term {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            prefix,
        }
    }

    #[test]
    fn words_are_lowercased_without_accents_and_cjk_splits_per_character() {
        assert_eq!(
            document("Café au LAIT, crème-brûlée! 42x"),
            ["cafe", "au", "lait", "creme", "brulee", "42x"]
        );
        assert_eq!(
            document("在東京都見面"),
            ["在", "東", "京", "都", "見", "面"]
        );
        assert_eq!(document("see東京ok"), ["see", "東", "京", "ok"]);
        assert_eq!(document("한국어 텍스트"), ["한국어", "텍스트"]);
        assert!(document("... 👍 !!").is_empty());
    }

    #[test]
    fn a_query_has_words_phrases_and_prefixes() {
        assert_eq!(
            parse(r#"  Meet "North Gate" cha* e-mail 東京 "#)
                .unwrap()
                .terms,
            [
                term(&["meet"], false),
                term(&["north", "gate"], false),
                term(&["cha"], true),
                term(&["e", "mail"], false),
                term(&["東", "京"], false),
            ]
        );
        assert_eq!(
            parse(r#""unterminated phrase"#).unwrap().terms,
            [term(&["unterminated", "phrase"], false)]
        );
        assert_eq!(parse("same same SAME").unwrap().terms.len(), 1);
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        assert_eq!(parse("   "), Err(QueryError::Length));
        assert_eq!(
            parse(&"a".repeat(QUERY_CHARS_MAX + 1)),
            Err(QueryError::Length)
        );
        assert_eq!(parse("!!! -- \"\""), Err(QueryError::NoWords));
        assert_eq!(parse("c*"), Err(QueryError::ShortPrefix));
        let many: Vec<String> = (0..=TERMS_MAX).map(|i| format!("w{i}")).collect();
        assert_eq!(parse(&many.join(" ")), Err(QueryError::TooManyTerms));
    }

    #[test]
    fn a_snippet_marks_what_matched_around_the_first_match() {
        let q = parse("gate mee*").unwrap();
        let parts = snippet("We meet at the north Gate, by the gates.", &q, 200).unwrap();
        let shown: Vec<(&str, bool)> = parts.iter().map(|(t, m)| (t.as_str(), *m)).collect();
        assert_eq!(
            shown,
            [
                ("We ", false),
                ("meet", true),
                (" at the north ", false),
                ("Gate", true),
                (", by the gates.", false),
            ]
        );
        let long = format!("{} needle {}", "hay ".repeat(100), "hay ".repeat(100));
        let parts = snippet(&long, &parse("needle").unwrap(), 40).unwrap();
        assert_eq!(parts.first().unwrap().0.chars().next(), Some('…'));
        assert!(parts.iter().any(|(t, m)| *m && t == "needle"));
        assert!(parts.last().unwrap().0.ends_with('…'));
        assert!(snippet("nothing here", &q, 40).is_none());
    }

    #[test]
    fn a_phrase_matches_words_in_order_only() {
        let q = parse(r#""north gate""#).unwrap();
        assert!(snippet("the north gate", &q, 80).is_some());
        assert!(snippet("the gate north", &q, 80).is_none());
    }
}
