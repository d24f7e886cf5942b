//! Tokenizers: the word-level one of format 1's text encoder ([`Tokenizer`])
//! and format 2's prompt tokenizer ([`PromptTokenizer`], a Hugging Face
//! `tokenizer.json`).
//!
//! Word level:
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
    /// The token and mask buffers differ in length (a wiring bug).
    #[error("{ids} token slots but {mask} mask slots")]
    SlotMismatch {
        /// Token id slots.
        ids: usize,
        /// Mask slots.
        mask: usize,
    },
    /// The tokenizer itself failed on the text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
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

/// Format 2's `[text]`: the instruction in the prompt template, tokenized by
/// a Hugging Face `tokenizer.json` and padded on the right to
/// `max_tokens`, as LeRobot's `TokenizerProcessorStep` does with
/// `padding="max_length"` (with `padding="longest"` the caller runs the
/// graphs at the returned length and the padding is never read).
/// Allocates while encoding (the `tokenizers` crate), so it runs on the
/// inference worker when the instruction changes.
pub struct PromptTokenizer {
    inner: tokenizers::Tokenizer,
    template: String,
    pad_id: i64,
    add_special_tokens: bool,
    state_bins: Option<usize>,
    clean_instruction: bool,
}

impl std::fmt::Debug for PromptTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTokenizer").field("template", &self.template).field("pad_id", &self.pad_id).finish()
    }
}

/// Why a `tokenizer.json` was refused; the key it concerns is in the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptTokenizerError {
    /// `[text] tokenizer`: not a tokenizer.json the `tokenizers` crate reads.
    #[error("not a Hugging Face tokenizer.json: {0}")]
    Parse(String),
    /// `[text] pad_token`: not in the tokenizer's vocabulary.
    #[error("pad token {0:?} is not in the tokenizer's vocabulary")]
    NoPadToken(String),
}

impl PromptTokenizer {
    /// Reads `tokenizer.json` bytes (verified by the caller) for `text`. The
    /// file's own padding and truncation settings are dropped: the manifest's
    /// `max_tokens` and `pad_token` decide.
    pub fn from_bytes(json: &[u8], text: &crate::manifest::TextConfig) -> Result<Self, PromptTokenizerError> {
        let mut inner =
            tokenizers::Tokenizer::from_bytes(json).map_err(|e| PromptTokenizerError::Parse(e.to_string()))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| PromptTokenizerError::Parse(e.to_string()))?;
        let pad_id = inner
            .token_to_id(&text.pad_token)
            .ok_or_else(|| PromptTokenizerError::NoPadToken(text.pad_token.clone()))?;
        Ok(PromptTokenizer {
            inner,
            template: text.template.clone(),
            pad_id: i64::from(pad_id),
            add_special_tokens: text.add_special_tokens,
            state_bins: text.state_bins,
            clean_instruction: text.clean_instruction,
        })
    }

    /// Whether the prompt holds the state (it changes every inference).
    pub fn uses_state(&self) -> bool {
        self.state_bins.is_some()
    }

    /// The prompt for `instruction` and the normalized `state` (read only
    /// when the template has `{state}`).
    pub fn prompt(&self, instruction: &str, state: &[f32]) -> String {
        let instruction =
            if self.clean_instruction { instruction.trim().replace(['_', '\n'], " ") } else { instruction.to_string() };
        // The state first: an instruction's own text is never substituted.
        let template = match self.state_bins {
            Some(bins) => {
                let words: Vec<String> = state.iter().map(|&x| digitize(x, bins).to_string()).collect();
                self.template.replacen("{state}", &words.join(" "), 1)
            }
            None => self.template.clone(),
        };
        template.replacen("{instruction}", &instruction, 1)
    }

    /// Tokenizes the prompt of `instruction` into `ids` (padded with the pad
    /// token) and `mask` (true for real tokens; `ids.len()` slots each). A
    /// longer prompt is cut to the slots, as LeRobot's processor does
    /// (`truncation=True`): the model was trained on cut prompts. Returns the
    /// prompt's token count before cutting; on error neither buffer changes.
    pub fn encode_into(
        &self,
        instruction: &str,
        state: &[f32],
        ids: &mut [i64],
        mask: &mut [bool],
    ) -> Result<usize, TokenizeError> {
        let enc = self
            .inner
            .encode(self.prompt(instruction, state), self.add_special_tokens)
            .map_err(|e| TokenizeError::Tokenizer(e.to_string()))?;
        let tokens = enc.get_ids();
        if mask.len() != ids.len() {
            return Err(TokenizeError::SlotMismatch { ids: ids.len(), mask: mask.len() });
        }
        ids.fill(self.pad_id);
        mask.fill(false);
        for ((slot, m), &t) in ids.iter_mut().zip(mask.iter_mut()).zip(tokens) {
            *slot = i64::from(t);
            *m = true;
        }
        Ok(tokens.len())
    }
}

/// LeRobot's π0.5 state bin: `np.digitize(x, np.linspace(-1, 1, bins + 1)[:-1]) - 1`,
/// the number of bin edges `-1 + 2k / bins` (k < bins, exact in f64 as
/// NumPy's) at or below `x`, minus one: -1 below -1, `bins - 1` from the
/// last edge up, -1 for NaN (the input checks refuse a NaN state before).
pub fn digitize(x: f32, bins: usize) -> i64 {
    let x = f64::from(x);
    if x.is_nan() {
        return -1;
    }
    let edge = |k: i64| -1.0 + 2.0 * k as f64 / bins as f64;
    let last = bins as i64 - 1;
    // A first guess, then counted against the edges themselves: `x + 1`
    // rounds for tiny |x| (x = -1e-20 would land on the edge at 0).
    let mut k = (((x + 1.0) * bins as f64 / 2.0).floor() as i64).clamp(-1, last);
    while k >= 0 && edge(k) > x {
        k -= 1;
    }
    while k < last && edge(k + 1) <= x {
        k += 1;
    }
    k
}
