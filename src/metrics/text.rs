//! Python string semantics the official answer normalisers rely on, so that a Rust
//! normaliser gives the same tokens: `str.split()` whitespace, the Unicode `\w` behind the
//! regex `\b`, `string.punctuation` and the `P*` Unicode categories.

use unicode_general_category::get_general_category;

/// Python's `str.isspace()`: Rust's `char::is_whitespace` (the White_Space property) plus
/// U+001C..U+001F, which Python also treats as separators.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument: runs of whitespace separate tokens, and leading or
/// trailing whitespace yields no empty token.
pub fn py_split(s: &str) -> Vec<&str> {
    s.split(is_py_space).filter(|t| !t.is_empty()).collect()
}

/// A character Python's `re` counts as `\w` in a `str` pattern: a letter (categories `L*`), a
/// number (`N*`) or `_`. Combining marks (`M*`) are not word characters for Python, unlike
/// `char::is_alphanumeric`.
pub fn is_py_word(c: char) -> bool {
    if c == '_' || c.is_ascii_alphanumeric() {
        return true;
    }
    if c.is_ascii() {
        return false;
    }
    matches!(get_general_category(c).abbreviation().as_bytes().first(), Some(b'L' | b'N'))
}

/// Python's `string.punctuation`: the 32 ASCII punctuation and symbol characters
/// ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``.
pub fn is_ascii_punct(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// MLQA's `PUNCT`: every character whose Unicode general category starts with `P`, together
/// with `string.punctuation` (which adds the ASCII symbols `$+<=>^`|~`).
pub fn is_unicode_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    get_general_category(c).abbreviation().starts_with('P')
}

/// `re.sub(r'\b(w1|w2|...)\b', ' ', text)`: every whole-word occurrence of one of `words` is
/// replaced by one space. Word boundaries use Python's Unicode `\w` ([`is_py_word`]) and are
/// judged on the original text, as `re.sub` does. Every entry of `words` must start and end
/// with a word character (true of all article lists), so which alternative matches first
/// cannot change the result.
pub fn replace_whole_words(text: &str, words: &[&str]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let words: Vec<Vec<char>> = words.iter().map(|w| w.chars().collect()).collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let at_boundary = i == 0 || !is_py_word(chars[i - 1]);
        let hit = if at_boundary {
            words.iter().find(|w| {
                let end = i + w.len();
                end <= chars.len() && chars[i..end] == w[..] && (end == chars.len() || !is_py_word(chars[end]))
            })
        } else {
            None
        };
        match hit {
            Some(w) => {
                out.push(' ');
                i += w.len();
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_includes_information_separators() {
        assert_eq!(py_split("  a\u{1f}b\u{3000}c \n"), vec!["a", "b", "c"]);
        // U+200B (zero width space) is not whitespace for Python either.
        assert_eq!(py_split("a\u{200b}b"), vec!["a\u{200b}b"]);
    }

    #[test]
    fn word_characters_follow_python() {
        assert!(is_py_word('é') && is_py_word('_') && is_py_word('٣') && is_py_word('中'));
        // A Devanagari vowel sign (Mc) is alphabetic for Rust but not `\w` for Python.
        assert!('\u{93e}'.is_alphabetic() && !is_py_word('\u{93e}'));
        assert!(!is_py_word('-') && !is_py_word(' '));
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(replace_whole_words("the theme of a an", &["a", "an", "the"]), "  theme of    ");
        assert_eq!(replace_whole_words("théa the_x", &["the"]), "théa the_x");
    }
}
