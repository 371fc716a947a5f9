//! A SentencePiece model file (`sentencepiece.bpe.model`, `spm.model`): the protobuf
//! `ModelProto`, read for what a Unigram tokenizer needs (each piece, its score and type, and
//! the normalizer's precompiled character map). Hand-read: the format is stable and small, and
//! every length is checked against the bytes that remain before anything is sliced.

use std::path::Path;

use crate::error::{Error, Result};

/// Largest model file read (XLM-R's is 5 MB).
const MAX_MODEL: u64 = 64 << 20;

/// A piece's type (`SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SpmModel {
    pub pieces: Vec<Piece>,
    /// `NormalizerSpec.precompiled_charsmap`, empty when the model has none.
    pub precompiled_charsmap: Vec<u8>,
    /// `TrainerSpec.model_type`: 1 Unigram, 2 BPE.
    pub model_type: u64,
    /// `TrainerSpec.unk_id` (0 when the file does not say).
    pub unk_id: u64,
}

/// Reads protobuf wire format: varints and length-delimited fields, bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at)?;
            self.at += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len())?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Some(out)
    }

    fn fixed32(&mut self) -> Option<u32> {
        let b = self.buf.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next field's number and wire type, or None at the end.
    fn key(&mut self) -> Option<Option<(u64, u64)>> {
        if self.at >= self.buf.len() {
            return Some(None);
        }
        let k = self.varint()?;
        Some(Some((k >> 3, k & 7)))
    }

    /// Skips a field of `wire` type.
    fn skip(&mut self, wire: u64) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => (self.at + 8 <= self.buf.len()).then(|| self.at += 8),
            2 => self.bytes().map(|_| ()),
            5 => self.fixed32().map(|_| ()),
            _ => None,
        }
    }
}

fn piece(buf: &[u8]) -> Option<Piece> {
    let mut r = Reader { buf, at: 0 };
    let mut p = Piece { piece: String::new(), score: 0.0, kind: PieceType::Normal };
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 2) => p.piece = String::from_utf8(r.bytes()?.to_vec()).ok()?,
            (2, 5) => p.score = f32::from_bits(r.fixed32()?),
            (3, 0) => {
                p.kind = match r.varint()? {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    _ => return None,
                }
            }
            (_, w) => r.skip(w)?,
        }
    }
    Some(p)
}

/// Parses a `ModelProto`.
pub(crate) fn parse(buf: &[u8]) -> Option<SpmModel> {
    let mut r = Reader { buf, at: 0 };
    let mut m = SpmModel::default();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 2) => m.pieces.push(piece(r.bytes()?)?),
            (2, 2) => {
                // TrainerSpec: model_type is field 3, unk_id field 40.
                let mut t = Reader { buf: r.bytes()?, at: 0 };
                while let Some((f, w)) = t.key()? {
                    match (f, w) {
                        (3, 0) => m.model_type = t.varint()?,
                        (40, 0) => m.unk_id = t.varint()?,
                        _ => t.skip(w)?,
                    }
                }
            }
            (3, 2) => {
                // NormalizerSpec: precompiled_charsmap is field 2.
                let mut n = Reader { buf: r.bytes()?, at: 0 };
                while let Some((f, w)) = n.key()? {
                    if (f, w) == (2, 2) {
                        m.precompiled_charsmap = n.bytes()?.to_vec();
                    } else {
                        n.skip(w)?;
                    }
                }
            }
            (_, w) => r.skip(w)?,
        }
    }
    Some(m)
}

/// Reads and parses a SentencePiece model file.
pub(crate) fn read(path: &Path) -> Result<SpmModel> {
    let file = crate::files::open_regular(path)?;
    let len = file.len(path)?;
    if len > MAX_MODEL {
        return Err(Error::Tokenizer {
            path: path.to_path_buf(),
            message: format!("{len} bytes is over the {MAX_MODEL}-byte limit of a SentencePiece model"),
        });
    }
    let mut buf = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_MODEL + 1), &mut buf).map_err(|e| Error::io(path, e))?;
    let model = parse(&buf)
        .ok_or_else(|| Error::Tokenizer { path: path.to_path_buf(), message: "is not a SentencePiece model (bad protobuf)".into() })?;
    if model.pieces.is_empty() {
        return Err(Error::Tokenizer { path: path.to_path_buf(), message: "holds no pieces".into() });
    }
    if model.model_type != 1 {
        return Err(Error::Tokenizer {
            path: path.to_path_buf(),
            message: format!("is a SentencePiece model of type {} (only Unigram, type 1, is read)", model.model_type),
        });
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field(n: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    #[test]
    fn reads_pieces_scores_types_and_the_charsmap_and_refuses_damage() {
        let mut p = Vec::new();
        field(1, "▁Oslo".as_bytes(), &mut p);
        varint(2 << 3 | 5, &mut p);
        p.extend_from_slice(&(-3.5f32).to_bits().to_le_bytes());
        varint(3 << 3, &mut p);
        varint(3, &mut p);
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(1, &mut trainer);
        let mut norm = Vec::new();
        field(1, b"nmt_nfkc", &mut norm);
        field(2, &[1, 2, 3], &mut norm);
        let mut m = Vec::new();
        field(1, &p, &mut m);
        field(2, &trainer, &mut m);
        field(3, &norm, &mut m);
        let got = parse(&m).unwrap();
        assert_eq!(got.pieces.len(), 1);
        assert_eq!((got.pieces[0].piece.as_str(), got.pieces[0].score, got.pieces[0].kind), ("▁Oslo", -3.5, PieceType::Control));
        assert_eq!(got.precompiled_charsmap, vec![1, 2, 3]);
        assert_eq!(got.model_type, 1);
        // Every truncation is an error, never a panic or a read past the end.
        for n in 0..m.len() {
            let _ = parse(&m[..n]);
        }
        // A length that claims more than the file holds.
        assert!(parse(&[0x0a, 0xff, 0xff, 0xff, 0x0f, 1]).is_none());
    }
}
