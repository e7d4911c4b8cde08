//! What a reordering run did to one language's training file (reference `seeds.md` B.4 item 7):
//! how many sentences moved, how far (Kendall's τ against the identity), and how much of the
//! English the alignment covered. One line for the terminal, JSON for the record.

use serde::{Deserialize, Serialize, Serializer};

/// Counts over one reordered file. A sentence is one English word sequence with its own
/// alignment line: a tagging sentence, or one text field (premise, hypothesis, sentence1,
/// sentence2) of a pair example. The counts are stored; the shares and means are computed from
/// them, and the JSON carries both (`serde_json::to_string(&d)`; reading it back keeps the
/// counts and ignores the derived fields).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Diagnostics {
    /// Examples in the file: tagging sentences, or pair rows.
    pub examples: usize,
    /// Sentences (for pair tasks, two per example).
    pub sentences: usize,
    /// Sentences whose order changed (π is not the identity).
    pub changed: usize,
    /// Sentences without any link: left as they are.
    pub unreordered: usize,
    /// Sentences with links and at least 2 words: those Kendall's τ is averaged over.
    pub tau_sentences: usize,
    /// The sum of Kendall's τ over those sentences.
    pub tau_sum: f64,
    /// English words in all sentences (m summed).
    pub words: usize,
    /// English words without a link, in all sentences (all the words of an unreordered one).
    pub unaligned_words: usize,
    /// Distinct links (|A| summed).
    pub links: usize,
}

impl Diagnostics {
    /// Records one sentence of `m` words with `links` distinct links, `aligned` of its words
    /// linked, and its permutation (`None` when it had no link).
    pub fn add_sentence(&mut self, m: usize, links: usize, aligned: usize, perm: Option<&[usize]>) {
        self.sentences += 1;
        self.words += m;
        self.unaligned_words += m.saturating_sub(aligned);
        self.links += links;
        match perm {
            None => self.unreordered += 1,
            Some(p) => {
                if p.iter().enumerate().any(|(k, &i)| k != i) {
                    self.changed += 1;
                }
                if let Some(tau) = super::permute::kendall_tau(p) {
                    self.tau_sentences += 1;
                    self.tau_sum += tau;
                }
            }
        }
    }

    /// The share of sentences whose order changed (`None` without sentences).
    pub fn changed_share(&self) -> Option<f64> {
        ratio(self.changed as f64, self.sentences)
    }

    /// The mean Kendall's τ between π and the identity over sentences that have links and at
    /// least 2 words (`None` when there are none). Sentences without links are not reordered
    /// and are counted in [`Diagnostics::unreordered`] instead, so they do not pull the mean
    /// towards 1.
    pub fn mean_kendall_tau(&self) -> Option<f64> {
        ratio(self.tau_sum, self.tau_sentences)
    }

    /// The share of English words without a link, pooled over all sentences.
    pub fn unaligned_share(&self) -> Option<f64> {
        ratio(self.unaligned_words as f64, self.words)
    }

    /// Links per English word, |A| / m pooled over all sentences.
    pub fn links_per_word(&self) -> Option<f64> {
        ratio(self.links as f64, self.words)
    }
}

fn ratio(num: f64, den: usize) -> Option<f64> {
    (den > 0).then(|| num / den as f64)
}

impl Serialize for Diagnostics {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        /// The stored counts followed by the derived values (`null` when undefined).
        #[derive(Serialize)]
        struct Json {
            examples: usize,
            sentences: usize,
            changed: usize,
            unreordered: usize,
            tau_sentences: usize,
            tau_sum: f64,
            words: usize,
            unaligned_words: usize,
            links: usize,
            changed_share: Option<f64>,
            mean_kendall_tau: Option<f64>,
            unaligned_share: Option<f64>,
            links_per_word: Option<f64>,
        }
        Json {
            examples: self.examples,
            sentences: self.sentences,
            changed: self.changed,
            unreordered: self.unreordered,
            tau_sentences: self.tau_sentences,
            tau_sum: self.tau_sum,
            words: self.words,
            unaligned_words: self.unaligned_words,
            links: self.links,
            changed_share: self.changed_share(),
            mean_kendall_tau: self.mean_kendall_tau(),
            unaligned_share: self.unaligned_share(),
            links_per_word: self.links_per_word(),
        }
        .serialize(s)
    }
}

impl std::fmt::Display for Diagnostics {
    /// One line: `12 sentences (6 examples): 7 changed (58.3%), 1 unreordered (no links), mean
    /// Kendall τ 0.412 over 10, 8.1% of 74 English words unaligned, 1.05 links per English word`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
        write!(
            f,
            "{} sentences ({} examples): {} changed ({}), {} unreordered (no links), mean Kendall τ {} over {}, \
             {} of {} English words unaligned, {} links per English word",
            self.sentences,
            self.examples,
            self.changed,
            pct(self.changed_share()),
            self.unreordered,
            self.mean_kendall_tau().map_or("-".to_string(), |t| format!("{t:.3}")),
            self.tau_sentences,
            pct(self.unaligned_share()),
            self.words,
            self.links_per_word().map_or("-".to_string(), |v| format!("{v:.2}")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_shares_and_one_line() {
        let mut d = Diagnostics { examples: 3, ..Default::default() };
        d.add_sentence(3, 3, 3, Some(&[0, 1, 2])); // identity, τ = 1
        d.add_sentence(2, 2, 1, Some(&[1, 0])); // reversal, τ = −1, one word unaligned
        d.add_sentence(4, 0, 0, None); // no links
        d.add_sentence(1, 1, 1, Some(&[0])); // one word: no τ
        assert_eq!((d.sentences, d.changed, d.unreordered, d.tau_sentences), (4, 1, 1, 2));
        assert_eq!((d.words, d.unaligned_words, d.links), (10, 5, 6));
        assert_eq!(d.mean_kendall_tau(), Some(0.0));
        assert_eq!(d.changed_share(), Some(0.25));
        assert_eq!(d.unaligned_share(), Some(0.5));
        assert_eq!(d.links_per_word(), Some(0.6));
        assert_eq!(
            d.to_string(),
            "4 sentences (3 examples): 1 changed (25.0%), 1 unreordered (no links), mean Kendall τ 0.000 over 2, \
             50.0% of 10 English words unaligned, 0.60 links per English word"
        );
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["mean_kendall_tau"], 0.0);
        assert_eq!(json["links_per_word"], 0.6);
        let back: Diagnostics = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
        let empty = Diagnostics::default();
        assert_eq!(serde_json::to_value(&empty).unwrap()["mean_kendall_tau"], serde_json::Value::Null);
        assert!(empty.to_string().contains("mean Kendall τ - over 0"));
    }
}
