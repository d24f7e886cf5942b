//! Tensor axes that follow the prompt's length.
//!
//! With `[text] padding = "longest"` (LeRobot's SmolVLA default,
//! `pad_language_to = "longest"`) a prompt is not padded to `max_tokens`:
//! the token input holds exactly its `L` tokens, and every tensor computed
//! from them has an axis that follows: a VLM prefix of 16 image tokens, the
//! prompt and 1 state token is `L + 17` long, in its pad mask and in every
//! layer of its KV cache. A graph then does no work on padding.
//!
//! In the manifest such an axis is written as an expression of `L` in place
//! of its size: `shape = [1, "L"]`, `shape = [1, 2, "L + 17", 16]`
//! (`a*L + b` in general). `L` is bounded, `1 <= L <= max_tokens`, so every
//! buffer is allocated once for the longest prompt ([`TensorSpec::shape`]
//! holds that largest shape) and a run uses its first
//! [`TensorSpec::len_at`] values, laid out in the run's shape
//! ([`TensorSpec::shape_at`]).
//!
//! [`TensorSpec::shape`]: super::TensorSpec::shape
//! [`TensorSpec::len_at`]: super::TensorSpec::len_at
//! [`TensorSpec::shape_at`]: super::TensorSpec::shape_at

use std::fmt;

/// The symbol for the prompt's length in manifest shapes.
pub const PROMPT_LEN: &str = "L";

/// An axis of size `scale·L + offset`, `L` the prompt's token count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptAxis {
    /// Which axis of the shape.
    pub axis: usize,
    /// Factor of `L` (>= 1).
    pub scale: usize,
    /// Added to `scale·L`.
    pub offset: usize,
}

impl PromptAxis {
    /// The axis's size for a prompt of `tokens` tokens.
    pub const fn size(&self, tokens: usize) -> usize {
        self.scale * tokens + self.offset
    }

    /// Parses `"L"`, `"L + 17"`, `"17 + L"`, `"2*L + 1"` (spaces optional)
    /// for axis `axis`.
    pub fn parse(axis: usize, text: &str) -> Result<PromptAxis, String> {
        let bad = || {
            format!(
                "expected a size or an expression of the prompt's length `{PROMPT_LEN}` \
                 (`{PROMPT_LEN}`, `{PROMPT_LEN} + 17`, `2*{PROMPT_LEN} + 1`), found {text:?}"
            )
        };
        let (mut scale, mut offset) = (None, 0usize);
        for term in text.split('+').map(str::trim) {
            let symbol_factor = match term.split_once('*').map(|(a, b)| (a.trim(), b.trim())) {
                Some((k, PROMPT_LEN)) => Some(k.parse::<usize>().map_err(|_| bad())?),
                Some(_) => return Err(bad()),
                None if term == PROMPT_LEN => Some(1),
                None => None,
            };
            match symbol_factor {
                Some(_) if scale.is_some() => return Err(bad()),
                Some(k) => scale = Some(k),
                None => offset = offset.checked_add(term.parse::<usize>().map_err(|_| bad())?).ok_or_else(bad)?,
            }
        }
        match scale {
            Some(scale) if scale >= 1 => Ok(PromptAxis { axis, scale, offset }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for PromptAxis {
    /// The manifest's spelling, normalized: `L`, `L + 17`, `2*L + 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale != 1 {
            write!(f, "{}*", self.scale)?;
        }
        f.write_str(PROMPT_LEN)?;
        if self.offset != 0 {
            write!(f, " + {}", self.offset)?;
        }
        Ok(())
    }
}

/// A shape's axis as written in TOML: a size, or an expression of `L`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum AxisToml {
    /// A fixed size.
    Size(usize),
    /// An expression of the prompt's length.
    Prompt(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_parse_and_print_in_one_form() {
        for (text, scale, offset, printed) in [
            ("L", 1, 0, "L"),
            ("L + 17", 1, 17, "L + 17"),
            ("17+L", 1, 17, "L + 17"),
            ("2*L + 1", 2, 1, "2*L + 1"),
            (" 3 * L+4+5 ", 3, 9, "3*L + 9"),
        ] {
            let a = PromptAxis::parse(2, text).unwrap();
            assert_eq!((a.axis, a.scale, a.offset), (2, scale, offset), "{text}");
            assert_eq!(a.to_string(), printed);
            assert_eq!(PromptAxis::parse(2, printed).unwrap(), a);
        }
        assert_eq!(PromptAxis::parse(0, "L + 17").unwrap().size(5), 22);
    }

    #[test]
    fn anything_else_is_refused_with_the_text() {
        for text in ["", "N", "L + N", "L + L", "0*L", "L - 1", "17", "L*2", "-1 + L", "L + 99999999999999999999"] {
            let e = PromptAxis::parse(1, text).unwrap_err();
            assert!(e.contains(&format!("{text:?}")), "{text}: {e}");
        }
    }
}
