//! The reordering of one sentence (reference `seeds.md` B.4): the permutation π of the English
//! word positions that follows the target order of their links, where unaligned English words go
//! (the default rule and the punctuation-aware one), and Kendall's τ of π against the identity.
//!
//! π is a list of original positions in their new order: the reordered sentence is
//! `(e[π[0]], e[π[1]], …)` and its labels `(y[π[0]], …)`, so words and labels move together and
//! nothing is inserted or dropped.

use crate::align::pharaoh::Link;
use unicode_general_category::{get_general_category, GeneralCategory};

/// Which side an unaligned English word looks for its anchor (an aligned word) on first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// The default: the nearest aligned word to the right, the word placed just before it;
    /// when none is on the right (final punctuation), the nearest on the left, placed just
    /// after it.
    Right,
    /// Punctuation other than opening brackets and quotes (`--punct`): the nearest aligned word
    /// to the left, placed just after it; when none is on the left, the nearest on the right,
    /// placed just before it.
    Left,
}

/// The permutation of an English sentence of `m` words given its links `(i, j)` (i English,
/// j target word), or `None` when no link falls inside the sentence (the sentence stays as it
/// is and counts as unreordered).
///
/// With T(i) = {j : (i, j) ∈ links}, an aligned word's key is k(i) = min T(i): a word aligned to
/// several target words (not ↔ ne … pas) goes to its first target position, and words aligned
/// to the same target word (New York ↔ 纽约) tie on the key and keep their English order. An
/// unaligned word `i` is attached to an anchor `a` as `attach(i)` says. Sort keys, ordered
/// lexicographically by a stable sort: aligned `(k(i), i, 0, i)`; unaligned `(k(a), a, −1, i)`
/// when placed before its anchor and `(k(a), a, +1, i)` when after, so each anchor's group stays
/// contiguous and runs of unaligned words keep their English order.
///
/// Under [`Attach::Right`] for every word, a monotone alignment (i < i′ ⇒ k(i) ≤ k(i′)) gives
/// the identity. Under `--punct` it can still move a punctuation word that follows an unaligned
/// non-punctuation word in the same gap between two aligned words (`big red , car` with `red`
/// and `,` unaligned becomes `big , red car`).
///
/// Links are expected to be validated by the caller (`i < m`; [`super::reorder_file`] reports
/// a link beyond its sentence with the alignment file and line); any with `i ≥ m` are ignored
/// here. Duplicate links change nothing.
pub fn permutation(m: usize, links: &[Link], attach: impl Fn(usize) -> Attach) -> Option<Vec<usize>> {
    // key[i] = min T(i), None for an unaligned word.
    let mut key: Vec<Option<usize>> = vec![None; m];
    for &(i, j) in links {
        if let Some(k) = key.get_mut(i) {
            *k = Some(k.map_or(j, |old| old.min(j)));
        }
    }
    if key.iter().all(Option::is_none) {
        return None;
    }
    // The nearest aligned word strictly to the left and to the right of each position.
    let mut left: Vec<Option<usize>> = vec![None; m];
    let mut last = None;
    for (i, l) in left.iter_mut().enumerate() {
        *l = last;
        if key[i].is_some() {
            last = Some(i);
        }
    }
    let mut right: Vec<Option<usize>> = vec![None; m];
    let mut next = None;
    for i in (0..m).rev() {
        right[i] = next;
        if key[i].is_some() {
            next = Some(i);
        }
    }
    // (k, anchor, side, i) for every word; side −1 before the anchor, 0 the anchor, +1 after.
    let mut keyed: Vec<(usize, usize, i8, usize)> = Vec::with_capacity(m);
    for i in 0..m {
        let entry = match key[i] {
            Some(k) => (k, i, 0, i),
            None => {
                let before = right[i].map(|a| (a, -1));
                let after = left[i].map(|a| (a, 1));
                // Some aligned word exists, so one of the two sides has an anchor.
                let (a, side) = match attach(i) {
                    Attach::Right => before.or(after)?,
                    Attach::Left => after.or(before)?,
                };
                (key[a]?, a, side, i)
            }
        };
        keyed.push(entry);
    }
    keyed.sort_by_key(|&(k, a, side, i)| (k, a, side, i));
    Some(keyed.into_iter().map(|(_, _, _, i)| i).collect())
}

/// The number of words of an `m`-word sentence with at least one link (links with `i ≥ m`
/// ignored).
pub fn aligned_words(m: usize, links: &[Link]) -> usize {
    let mut aligned = vec![false; m];
    for &(i, _) in links {
        if let Some(a) = aligned.get_mut(i) {
            *a = true;
        }
    }
    aligned.iter().filter(|&&a| a).count()
}

/// `items` in the order `perm` gives: `out[p] = items[perm[p]]`. `perm` must be a permutation
/// of `0..items.len()` (as [`permutation`] returns); positions beyond `items` are skipped.
pub fn apply<T: Clone>(perm: &[usize], items: &[T]) -> Vec<T> {
    perm.iter().filter_map(|&i| items.get(i).cloned()).collect()
}

/// Kendall's τ between the permutation and the identity: (concordant − discordant) pairs over
/// all m(m−1)/2 pairs of positions, a pair p < q concordant when `perm[p] < perm[q]`. 1 for the
/// identity, −1 for a full reversal; `None` when m < 2 (no pair to compare).
pub fn kendall_tau(perm: &[usize]) -> Option<f64> {
    let m = perm.len();
    if m < 2 {
        return None;
    }
    let mut discordant: u64 = 0;
    for p in 0..m {
        for q in p + 1..m {
            if perm[p] > perm[q] {
                discordant += 1;
            }
        }
    }
    let pairs = (m as u64) * (m as u64 - 1) / 2;
    let concordant = pairs - discordant;
    Some((concordant as f64 - discordant as f64) / pairs as f64)
}

/// Whether `word` is a punctuation token: non-empty and every character in a Unicode `P*`
/// category (`. , ; : ! ? - — ( ) [ ] { } " ' « » “ ” …`). Symbols (`$ % + < = > | ~`, categories
/// `S*`) are not punctuation. Used for `--punct` where the file has no POS tag (PAN-X and the
/// pair tasks); UDPOS uses its `PUNCT` tag instead.
pub fn is_punct_word(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| get_general_category(c).abbreviation().starts_with('P'))
}

/// Whether an opening/closing decision for a punctuation token can be made from the token
/// alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opening {
    Yes,
    No,
    /// ASCII `"` and `'`, which open and close alike: decided by their order in the sentence.
    Ambiguous,
}

fn opening(word: &str) -> Opening {
    match word {
        "\"" | "'" => Opening::Ambiguous,
        "``" => Opening::Yes,
        "''" => Opening::No,
        _ => match word.chars().next().map(get_general_category) {
            Some(GeneralCategory::OpenPunctuation | GeneralCategory::InitialPunctuation) => Opening::Yes,
            _ => Opening::No,
        },
    }
}

/// Where each word of a sentence attaches when unaligned under `--punct`: a punctuation word
/// (`is_punct[i]`) that is not an opening bracket or quote attaches [`Attach::Left`]; every
/// other word [`Attach::Right`], as by default.
///
/// Opening brackets and quotes: a token whose first character is in Unicode category `Ps`
/// (open punctuation: `( [ { „ ‚ 「 『 【 《 〈 （`) or `Pi` (initial quote: `« “ ‘ ‹`, which open a
/// quotation in English, the side being reordered), and PTB's ` `` `. The ASCII quotes `"` and
/// `'`, which open and close alike, alternate: the 1st, 3rd, … occurrence of the same token in
/// the sentence opens, the 2nd, 4th, … closes. `''`, `»`, `”`, `’`, `)` and the rest close or do
/// not pair, and attach left.
pub fn punct_attachments(words: &[&str], is_punct: &[bool]) -> Vec<Attach> {
    let mut seen_double = 0usize;
    let mut seen_single = 0usize;
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if !is_punct.get(i).copied().unwrap_or(false) {
                return Attach::Right;
            }
            let opens = match opening(w) {
                Opening::Yes => true,
                Opening::No => false,
                Opening::Ambiguous => {
                    let seen = if *w == "\"" { &mut seen_double } else { &mut seen_single };
                    *seen += 1;
                    *seen % 2 == 1
                }
            };
            if opens {
                Attach::Right
            } else {
                Attach::Left
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn default(m: usize, links: &[Link]) -> Option<Vec<usize>> {
        permutation(m, links, |_| Attach::Right)
    }

    fn is_permutation(perm: &[usize], m: usize) -> bool {
        let mut seen = vec![false; m];
        perm.len() == m && perm.iter().all(|&i| i < m && !std::mem::replace(&mut seen[i], true))
    }

    #[test]
    fn monotone_alignment_gives_the_identity() {
        assert_eq!(default(4, &[(0, 0), (1, 1), (2, 2), (3, 3)]), Some(vec![0, 1, 2, 3]));
        // Monotone with gaps, many-to-one and one-to-many: still the identity.
        assert_eq!(default(5, &[(0, 0), (0, 1), (1, 1), (3, 4), (4, 4), (4, 7)]), Some(vec![0, 1, 2, 3, 4]));
    }

    #[test]
    fn no_links_is_none_and_links_outside_the_sentence_are_ignored() {
        assert_eq!(default(3, &[]), None);
        assert_eq!(default(0, &[]), None);
        assert_eq!(default(2, &[(5, 0)]), None);
        assert_eq!(aligned_words(3, &[(0, 1), (0, 2), (2, 0), (7, 0)]), 2);
    }

    #[test]
    fn crossing_links_reverse_the_sentence() {
        // the black cat ↔ reversed target order.
        assert_eq!(default(3, &[(0, 2), (1, 1), (2, 0)]), Some(vec![2, 1, 0]));
        // A single swap: NOUN-ADJ in French (black cat ↔ chat noir).
        assert_eq!(default(3, &[(0, 0), (1, 2), (2, 1)]), Some(vec![0, 2, 1]));
    }

    #[test]
    fn one_to_many_uses_the_first_target_position() {
        // he does not sleep ↔ il ne dort pas: "not" ↔ ne (1), pas (3); "does" unaligned.
        // keys: he 0, not 1, sleep 2; "does" attaches before "not".
        let links = [(0, 0), (2, 1), (2, 3), (3, 2)];
        assert_eq!(default(4, &links), Some(vec![0, 1, 2, 3]));
        // The same with "sleep" first in English: sleep ↔ 2 goes after not ↔ {1, 3}.
        assert_eq!(default(2, &[(0, 2), (1, 1), (1, 3)]), Some(vec![1, 0]));
    }

    #[test]
    fn many_to_one_stays_contiguous_in_english_order() {
        // I love New York ↔ 我 爱 纽约 … with 纽约 first: New (2) and York (3) both ↔ 0.
        assert_eq!(default(4, &[(0, 1), (1, 2), (2, 0), (3, 0)]), Some(vec![2, 3, 0, 1]));
    }

    #[test]
    fn unaligned_words_attach_before_the_next_aligned_word() {
        // the cat sleeps . ↔ dort chat: "the" attaches before "cat", "." after "sleeps" (none on
        // its right).
        let links = [(1, 1), (2, 0)];
        assert_eq!(default(4, &links), Some(vec![2, 3, 0, 1]));
        // A run of unaligned words keeps its order and its place before the anchor.
        // a b c X Y ↔ Y X: a b c before X.
        assert_eq!(default(5, &[(3, 1), (4, 0)]), Some(vec![4, 0, 1, 2, 3]));
        // A trailing run after the last aligned word follows it, in order, wherever it goes.
        assert_eq!(default(5, &[(0, 1), (1, 0)]), Some(vec![1, 2, 3, 4, 0]));
        // Unaligned words on both sides of one anchor: before first, anchor, after.
        assert_eq!(default(3, &[(1, 0)]), Some(vec![0, 1, 2]));
    }

    #[test]
    fn punct_variant_attaches_commas_left_and_opening_quotes_right() {
        // Yes , he said ↔ il a dit oui: Yes ↔ 3, he ↔ 0, said ↔ 2; "," unaligned.
        let words = ["Yes", ",", "he", "said"];
        let links = [(0, 3), (2, 0), (3, 2)];
        // Default: "," attaches before "he".
        assert_eq!(default(4, &links), Some(vec![1, 2, 3, 0]));
        // --punct: "," attaches after "Yes".
        let att = punct_attachments(&words, &[false, true, false, false]);
        assert_eq!(att, [Attach::Right, Attach::Left, Attach::Right, Attach::Right]);
        assert_eq!(permutation(4, &links, |i| att[i]), Some(vec![2, 3, 0, 1]));
        // A leading comma with nothing on its left still attaches to the right.
        let att = punct_attachments(&[",", "a", "b"], &[true, false, false]);
        assert_eq!(permutation(3, &[(1, 1), (2, 0)], |i| att[i]), Some(vec![2, 0, 1]));
        // he said “ yes ” ↔ oui … dit il: the opening quote stays before "yes", the closing one
        // after it.
        let words = ["he", "said", "“", "yes", "”"];
        let att = punct_attachments(&words, &[false, false, true, false, true]);
        assert_eq!(att[2], Attach::Right);
        assert_eq!(att[4], Attach::Left);
        assert_eq!(permutation(5, &[(0, 2), (1, 1), (3, 0)], |i| att[i]), Some(vec![2, 3, 4, 1, 0]));
    }

    #[test]
    fn punct_variant_can_move_a_comma_past_an_unaligned_word_under_a_monotone_alignment() {
        // big red , car ↔ 0 · · 3 with "red" and "," unaligned: "red" attaches before "car",
        // "," after "big", so under --punct the comma moves before "red".
        let words = ["big", "red", ",", "car"];
        let att = punct_attachments(&words, &[false, false, true, false]);
        assert_eq!(permutation(4, &[(0, 0), (3, 3)], |i| att[i]), Some(vec![0, 2, 1, 3]));
        assert_eq!(default(4, &[(0, 0), (3, 3)]), Some(vec![0, 1, 2, 3]));
    }

    #[test]
    fn opening_brackets_and_ascii_quotes() {
        let words = ["(", "\"", "a", "\"", ")", "'", "x", "'", "«", "»", "``", "''", "[", "„", ".", "—"];
        let mut punct = [true; 16];
        punct[2] = false;
        punct[6] = false;
        let att = punct_attachments(&words, &punct);
        use Attach::{Left as L, Right as R};
        assert_eq!(att, [R, R, R, L, L, R, R, L, R, L, R, L, R, R, L, L]);
        assert!(is_punct_word("...") && is_punct_word("«") && is_punct_word("—") && is_punct_word("\""));
        assert!(!is_punct_word("") && !is_punct_word("$") && !is_punct_word("a.") && !is_punct_word("+"));
    }

    #[test]
    fn kendall_tau_on_hand_checked_cases() {
        assert_eq!(kendall_tau(&[0, 1, 2, 3]), Some(1.0));
        assert_eq!(kendall_tau(&[3, 2, 1, 0]), Some(-1.0));
        assert_eq!(kendall_tau(&[1, 0]), Some(-1.0));
        // One adjacent swap in 3 words: 2 concordant, 1 discordant → 1/3.
        assert_eq!(kendall_tau(&[0, 2, 1]), Some(1.0 / 3.0));
        // [1, 2, 0]: pairs (1,2) c, (1,0) d, (2,0) d → −1/3.
        assert_eq!(kendall_tau(&[1, 2, 0]), Some(-1.0 / 3.0));
        // [2, 3, 0, 1]: 2 concordant, 4 discordant of 6 → −1/3.
        assert_eq!(kendall_tau(&[2, 3, 0, 1]), Some(-1.0 / 3.0));
        assert_eq!(kendall_tau(&[0]), None);
        assert_eq!(kendall_tau(&[]), None);
    }

    #[test]
    fn random_alignments_always_give_a_deterministic_permutation() {
        let mut rng = Rng::new(2024);
        for trial in 0..5000 {
            let m = 1 + rng.below(30) as usize;
            let n = 1 + rng.below(35) as usize;
            let density = rng.next_f32();
            let mut links = Vec::new();
            for i in 0..m {
                for j in 0..n {
                    if rng.next_f32() < density * 0.2 {
                        links.push((i, j));
                    }
                }
            }
            let punct: Vec<bool> = (0..m).map(|_| rng.below(4) == 0).collect();
            let words: Vec<&str> = punct.iter().map(|&p| if p { "," } else { "w" }).collect();
            let att = punct_attachments(&words, &punct);
            for variant in 0..2 {
                let attach = |i: usize| if variant == 0 { Attach::Right } else { att[i] };
                let perm = permutation(m, &links, attach);
                match &perm {
                    None => assert!(links.is_empty(), "trial {trial}: links but no permutation"),
                    Some(p) => {
                        assert!(is_permutation(p, m), "trial {trial}: {p:?} is not a permutation of 0..{m}");
                        // Reversed and shuffled link order changes nothing.
                        let mut shuffled = links.clone();
                        shuffled.reverse();
                        assert_eq!(permutation(m, &shuffled, attach).as_ref(), Some(p));
                        let tau = kendall_tau(p).unwrap_or(1.0);
                        assert!((-1.0..=1.0).contains(&tau));
                    }
                }
                // Monotone links (j = i) give the identity under the default rule.
                let monotone: Vec<Link> = links.iter().map(|&(i, _)| (i, i)).collect();
                if variant == 0 {
                    if let Some(p) = permutation(m, &monotone, attach) {
                        assert_eq!(p, (0..m).collect::<Vec<_>>(), "trial {trial}");
                    }
                }
            }
        }
    }

    #[test]
    fn apply_moves_items_with_the_permutation() {
        assert_eq!(apply(&[2, 0, 1], &["a", "b", "c"]), ["c", "a", "b"]);
        assert!(apply::<u8>(&[], &[]).is_empty());
    }
}
