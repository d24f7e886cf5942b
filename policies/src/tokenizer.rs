//! Word-level tokenizer for the bundle's text encoder.
//!
//! The vocabulary file has one token a line; the line number (from 0) is the
//! token id, and line 0 is the padding token. Text is lower-cased and split
//! on anything that is not a letter or digit; every word must be in the
//! vocabulary (an unknown word is an error, not a silent `<unk>`, so a
//! mistyped instruction is noticed). Ids are left-aligned and padded with 0.

use std::collections::HashMap;

/// Why an instruction could not be tokenized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizeError {
    /// A word is not in the vocabulary.
    #[error("unknown word {0:?}")]
    UnknownWord(String),
    /// More words than the text encoder takes.
    #[error("{words} words, the text encoder takes at most {max}")]
    TooLong {
        /// Words in the instruction.
        words: usize,
        /// Token slots of the text encoder input.
        max: usize,
    },
}

/// Vocabulary lookup.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    ids: HashMap<String, i64>,
}

impl Tokenizer {
    /// Parses a vocabulary file's text; `Err` names the offending line.
    pub fn from_vocab(text: &str) -> Result<Self, String> {
        let mut ids = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let tok = line.trim();
            if tok.is_empty() {
                return Err(format!("line {}: empty token", i + 1));
            }
            if ids.insert(tok.to_string(), i as i64).is_some() {
                return Err(format!("line {}: duplicate token {tok:?}", i + 1));
            }
        }
        if ids.is_empty() {
            return Err("empty vocabulary".into());
        }
        Ok(Tokenizer { ids })
    }

    /// Tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the vocabulary is empty (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Writes the ids of `text` into `out`, padding with 0. `out` is only
    /// modified on success.
    pub fn encode(&self, text: &str, out: &mut [i64]) -> Result<(), TokenizeError> {
        let mut n = 0;
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let lower = word.to_lowercase();
            if !self.ids.contains_key(&lower) {
                return Err(TokenizeError::UnknownWord(lower));
            }
            n += 1;
        }
        if n > out.len() {
            return Err(TokenizeError::TooLong { words: n, max: out.len() });
        }
        out.fill(0);
        let words = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty());
        for (slot, word) in out.iter_mut().zip(words) {
            *slot = self.ids.get(&word.to_lowercase()).copied().unwrap_or(0);
        }
        Ok(())
    }
}
