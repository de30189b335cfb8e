//! The GGUF header checked by genarm before candle reads the file: every length and count fits in
//! the file, `general.alignment` is a power of two, and every tensor has a type genarm can compute
//! with, a shape whose size does not overflow, an aligned offset and bytes inside the file that no
//! other tensor claims. candle's reader trusts some of these (an alignment of 0 divides by zero,
//! a misaligned offset reads the wrong bytes, an unknown type is a bare number); after this check
//! it only ever sees a file whose header describes it truthfully.
//!
//! Layout (llama.cpp's `docs/gguf.md`): magic `GGUF`, version, tensor count, metadata count (u64
//! from version 2, u32 in version 1), the metadata key/value pairs, one info per tensor (name,
//! dimensions, type, offset), then the tensor data from the first multiple of the alignment.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::gguf_file::Content;

use crate::engine::error::{EngineError, Result};

/// llama.cpp's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;
/// Arrays nest at most this deep (llama.cpp writes none nested at all).
const MAX_DEPTH: usize = 8;
/// Longest metadata key or tensor name read into memory: llama.cpp's names are under 100 bytes.
const MAX_NAME: u64 = 64 * 1024;
/// The alignment a file without `general.alignment` has.
const DEFAULT_ALIGNMENT: u64 = 32;

/// A tensor as the header describes it, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    /// Dimensions as GGUF writes them: the row length (contiguous) first.
    pub dims: Vec<u64>,
    pub kind: TensorType,
    /// Bytes from the start of the tensor data.
    pub offset: u64,
    pub bytes: u64,
}

/// A header that holds together.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub metadata_count: u64,
    pub tensors: Vec<TensorEntry>,
    pub alignment: u64,
    /// Where the tensor data begins in the file.
    pub data_offset: u64,
}

/// A ggml tensor type genarm can read: (id, name, elements per block, bytes per block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorType {
    pub id: u32,
    pub name: &'static str,
    pub block: u64,
    pub block_bytes: u64,
}

/// The types candle reads (ggml.h's numbering and block layouts).
const READABLE: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (30, "BF16", 1, 2),
];

/// ggml types genarm cannot compute with, named so the message says what the file holds.
const UNREADABLE: &[(u32, &str)] = &[
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (34, "TQ1_0"),
    (35, "TQ2_0"),
    (39, "MXFP4"),
];

impl TensorType {
    fn from_id(id: u32) -> std::result::Result<Self, String> {
        if let Some(&(id, name, block, block_bytes)) = READABLE.iter().find(|t| t.0 == id) {
            return Ok(Self {
                id,
                name,
                block,
                block_bytes,
            });
        }
        let what = UNREADABLE.iter().find(|t| t.0 == id).map_or_else(
            || format!("unknown type {id}"),
            |t| format!("{} (type {id})", t.1),
        );
        let known: Vec<&str> = READABLE.iter().map(|t| t.1).collect();
        Err(format!(
            "is stored as {what}, which genarm cannot compute with (it reads {})",
            known.join(", ")
        ))
    }
}

/// Check the header of the GGUF file `path`, then read it with candle. The reader is returned
/// for reading tensors.
pub fn read(path: &Path) -> Result<(Content, Header, BufReader<File>)> {
    let file = File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let header = check(&mut reader).map_err(|msg| EngineError::invalid(path, msg))?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| EngineError::io(path, e))?;
    let content = Content::read(&mut reader).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("unreadable").trim();
        EngineError::invalid(path, format!("not a readable GGUF file: {}", shown(first)))
    })?;
    Ok((content, header, reader))
}

/// Check a GGUF header read from `input`; the message says what is wrong.
pub fn check<R: Read + Seek>(input: &mut R) -> std::result::Result<Header, String> {
    check_with(input, true)
}

/// [`check`] without the last step, that every tensor's bytes lie in the file: a header that
/// passes is safe for candle to read (its metadata and tensor list), though its data may be
/// cut short. `genarm inspect` describes such a file and lists the full check's error.
pub fn check_structure<R: Read + Seek>(input: &mut R) -> std::result::Result<Header, String> {
    check_with(input, false)
}

fn check_with<R: Read + Seek>(
    input: &mut R,
    check_data: bool,
) -> std::result::Result<Header, String> {
    let size = input
        .seek(SeekFrom::End(0))
        .and_then(|size| input.seek(SeekFrom::Start(0)).map(|_| size))
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut r = Cursor {
        input,
        pos: 0,
        size,
        version: 3,
    };
    let magic = r.bytes::<4>("the magic number")?;
    if &magic != b"GGUF" {
        return Err("not a GGUF file (it does not start with 'GGUF')".into());
    }
    r.version = r.u32("the version")?;
    if !(1..=3).contains(&r.version) {
        return Err(format!(
            "GGUF version {} is not one genarm reads (1 to 3)",
            r.version
        ));
    }
    let tensor_count = r.length("the tensor count")?;
    let metadata_count = r.length("the metadata count")?;
    // Each metadata pair takes at least a key length, a type and one byte; each tensor info a
    // name length, a dimension count, a dimension, a type and an offset.
    let prefix = r.prefix_bytes();
    let least = metadata_count
        .saturating_mul(prefix + 5)
        .saturating_add(tensor_count.saturating_mul(2 * prefix + 16));
    if least > r.remaining() {
        return Err(format!(
            "the header claims {tensor_count} tensors and {metadata_count} metadata entries, \
             more than the file's {size} bytes can hold"
        ));
    }
    let alignment = read_metadata(&mut r, metadata_count)?;
    let tensors = read_tensor_infos(&mut r, tensor_count, alignment)?;
    let data_offset = r.pos.div_ceil(alignment).saturating_mul(alignment);
    if check_data {
        check_tensor_data(&tensors, data_offset, size)?;
    }
    Ok(Header {
        version: r.version,
        metadata_count,
        tensors,
        alignment,
        data_offset,
    })
}

/// Skip over every metadata value, keeping `general.alignment`.
fn read_metadata<R: Read + Seek>(
    r: &mut Cursor<'_, R>,
    count: u64,
) -> std::result::Result<u64, String> {
    let mut keys = HashSet::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for _ in 0..count {
        let key = r.name("a metadata key")?;
        let kind = r.u32("a metadata type")?;
        if key == "general.alignment" {
            if kind != 4 {
                return Err(format!(
                    "'general.alignment' must be a uint32 (GGUF type 4), it has type {kind}"
                ));
            }
            alignment = u64::from(r.u32("general.alignment")?);
            if !alignment.is_power_of_two() {
                return Err(format!(
                    "'general.alignment' is {alignment}; it must be a power of two"
                ));
            }
        } else {
            r.skip_value(kind, &key, 0)?;
        }
        if !keys.insert(key.clone()) {
            return Err(format!("metadata key '{}' appears twice", shown(&key)));
        }
    }
    Ok(alignment)
}

fn read_tensor_infos<R: Read + Seek>(
    r: &mut Cursor<'_, R>,
    count: u64,
    alignment: u64,
) -> std::result::Result<Vec<TensorEntry>, String> {
    let mut names = HashSet::new();
    let mut tensors = Vec::new();
    for _ in 0..count {
        let name = r.name("a tensor name")?;
        let it = |msg: String| format!("tensor '{}' {msg}", shown(&name));
        let n_dims = r.u32("a tensor's dimension count")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(it(format!(
                "has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.length("a tensor dimension")?);
        }
        let kind = TensorType::from_id(r.u32("a tensor type")?).map_err(it)?;
        let offset = r.u64("a tensor offset")?;
        let shape = || {
            let d: Vec<String> = dims.iter().map(u64::to_string).collect();
            d.join(" x ")
        };
        // Elements and bytes both fit in an i64 (llama.cpp's limit), computed without overflow.
        let elements = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .filter(|&n| n > 0 && n <= i64::MAX as u64);
        let bytes = elements
            .and_then(|n| (n / kind.block).checked_mul(kind.block_bytes))
            .filter(|&b| b <= i64::MAX as u64)
            .ok_or_else(|| it(format!("has an impossible shape {}", shape())))?;
        if dims[0] % kind.block != 0 {
            return Err(it(format!(
                "has rows of {} values, not a multiple of {}'s block of {}",
                dims[0], kind.name, kind.block
            )));
        }
        if offset % alignment != 0 {
            return Err(it(format!(
                "starts at offset {offset}, not a multiple of the alignment {alignment}"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(it("appears twice".into()));
        }
        tensors.push(TensorEntry {
            name,
            dims,
            kind,
            offset,
            bytes,
        });
    }
    Ok(tensors)
}

/// Every tensor's bytes lie inside the file and no two tensors share bytes.
fn check_tensor_data(
    tensors: &[TensorEntry],
    data_offset: u64,
    size: u64,
) -> std::result::Result<(), String> {
    let mut by_offset: Vec<&TensorEntry> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    let mut previous: Option<(&TensorEntry, u64)> = None;
    for t in by_offset {
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|start| start.checked_add(t.bytes))
            .filter(|&end| end <= size);
        let Some(end) = end else {
            return Err(format!(
                "tensor '{}' ({} bytes at data offset {}) runs past the end of the file ({} bytes): \
                 the file is truncated or its header is wrong",
                shown(&t.name),
                t.bytes,
                t.offset,
                size
            ));
        };
        if let Some((before, before_end)) = previous
            && data_offset + t.offset < before_end
        {
            return Err(format!(
                "tensors '{}' and '{}' overlap in the file",
                shown(&before.name),
                shown(&t.name)
            ));
        }
        previous = Some((t, end));
    }
    Ok(())
}

/// `text` as safe to print on one line: control characters escaped, at most 80 characters.
pub fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(80).flat_map(char::escape_debug).collect();
    if text.chars().nth(80).is_some() {
        out.push('…');
    }
    out
}

/// Reads the header's fields with the position and the file size known, so that no length is
/// trusted beyond the bytes that remain.
struct Cursor<'a, R> {
    input: &'a mut R,
    pos: u64,
    size: u64,
    version: u32,
}

impl<R: Read + Seek> Cursor<'_, R> {
    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        let mut buf = [0u8; N];
        self.input
            .read_exact(&mut buf)
            .map_err(|_| format!("the file ends inside {what} (at byte {})", self.pos))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        self.bytes::<8>(what).map(u64::from_le_bytes)
    }

    /// Bytes of a count or length: version 1 wrote them as u32.
    fn prefix_bytes(&self) -> u64 {
        if self.version == 1 { 4 } else { 8 }
    }

    fn length(&mut self, what: &str) -> std::result::Result<u64, String> {
        if self.version == 1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> std::result::Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "{what} at byte {} claims {n} bytes, more than the {} left in the file",
                self.pos,
                self.remaining()
            ));
        }
        // Short values are read through (a seek would empty a BufReader's buffer, and a
        // vocabulary is 150k short strings); long ones are seeked over.
        if n <= 64 * 1024 {
            std::io::copy(&mut (&mut *self.input).take(n), &mut std::io::sink())
                .map_err(|e| format!("cannot read {what}: {e}"))?;
        } else {
            let step = i64::try_from(n).map_err(|_| format!("{what} is too long"))?;
            self.input
                .seek(SeekFrom::Current(step))
                .map_err(|e| format!("cannot read {what}: {e}"))?;
        }
        self.pos += n;
        Ok(())
    }

    /// A key or tensor name, read into memory (bounded by [`MAX_NAME`]).
    fn name(&mut self, what: &str) -> std::result::Result<String, String> {
        let at = self.pos;
        let len = self.length(what)?;
        if len > MAX_NAME || len > self.remaining() {
            return Err(format!(
                "{what} at byte {at} claims a length of {len} bytes, which the file cannot hold"
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.input
            .read_exact(&mut buf)
            .map_err(|_| format!("the file ends inside {what} (at byte {at})"))?;
        self.pos += len;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Step over a metadata value of GGUF type `kind`.
    fn skip_value(
        &mut self,
        kind: u32,
        key: &str,
        depth: usize,
    ) -> std::result::Result<(), String> {
        let what = || format!("the value of '{}'", shown(key));
        match kind {
            0 | 1 | 7 => self.skip(1, &what()),
            2 | 3 => self.skip(2, &what()),
            4..=6 => self.skip(4, &what()),
            10..=12 => self.skip(8, &what()),
            8 => {
                let len = self.length(&what())?;
                self.skip(len, &what())
            }
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!("'{}' nests arrays too deep", shown(key)));
                }
                let element = self.u32(&what())?;
                let len = self.length(&what())?;
                match element_bytes(element, self.prefix_bytes()) {
                    Some(Fixed(n)) => self.skip(len.saturating_mul(n), &what()),
                    Some(AtLeast(n)) => {
                        if len.saturating_mul(n) > self.remaining() {
                            return Err(format!(
                                "{} claims {len} elements, more than the file can hold",
                                what()
                            ));
                        }
                        (0..len).try_for_each(|_| self.skip_value(element, key, depth + 1))
                    }
                    None => Err(format!(
                        "'{}' is an array of unknown type {element}",
                        shown(key)
                    )),
                }
            }
            other => Err(format!("'{}' has unknown type {other}", shown(key))),
        }
    }
}

/// The size on disk of one array element of GGUF type `kind`.
enum ElementSize {
    Fixed(u64),
    /// Strings and arrays: at least their length prefix.
    AtLeast(u64),
}
use ElementSize::{AtLeast, Fixed};

fn element_bytes(kind: u32, prefix: u64) -> Option<ElementSize> {
    match kind {
        0 | 1 | 7 => Some(Fixed(1)),
        2 | 3 => Some(Fixed(2)),
        4..=6 => Some(Fixed(4)),
        10..=12 => Some(Fixed(8)),
        8 => Some(AtLeast(prefix)),
        9 => Some(AtLeast(4 + prefix)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A GGUF v3 file written field by field, as `docs/gguf.md` lays it out.
    pub(crate) struct Builder {
        metadata: Vec<(String, u32, Vec<u8>)>,
        tensors: Vec<(String, Vec<u64>, u32, u64)>,
        data: usize,
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Self {
                metadata: Vec::new(),
                tensors: Vec::new(),
                data: 0,
            }
        }

        pub(crate) fn meta(mut self, key: &str, kind: u32, value: Vec<u8>) -> Self {
            self.metadata.push((key.into(), kind, value));
            self
        }

        pub(crate) fn tensor(mut self, name: &str, dims: &[u64], kind: u32, offset: u64) -> Self {
            self.tensors
                .push((name.into(), dims.to_vec(), kind, offset));
            self
        }

        pub(crate) fn data(mut self, bytes: usize) -> Self {
            self.data = bytes;
            self
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
            out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
            for (key, kind, value) in &self.metadata {
                out.extend(string(key));
                out.extend_from_slice(&kind.to_le_bytes());
                out.extend_from_slice(value);
            }
            for (name, dims, kind, offset) in &self.tensors {
                out.extend(string(name));
                out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
                dims.iter()
                    .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
                out.extend_from_slice(&kind.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
            }
            let alignment = self
                .metadata
                .iter()
                .find(|m| m.0 == "general.alignment" && m.2.len() == 4)
                .map_or(32, |m| {
                    u32::from_le_bytes([m.2[0], m.2[1], m.2[2], m.2[3]]) as usize
                })
                .max(1);
            out.resize(out.len().div_ceil(alignment) * alignment + self.data, 0);
            out
        }
    }

    fn checked(b: &Builder) -> std::result::Result<Header, String> {
        check(&mut std::io::Cursor::new(b.build()))
    }

    fn refused(b: &Builder) -> String {
        checked(b).expect_err("the header must be refused")
    }

    /// Two tensors: F32 [4, 2] = 32 bytes at 0, Q8_0 [64, 2] = 2 rows x 2 blocks x 34 = 136
    /// bytes at 32.
    fn valid() -> Builder {
        Builder::new()
            .meta("general.architecture", 8, string("llama"))
            .meta("general.alignment", 4, 32u32.to_le_bytes().to_vec())
            .tensor("a", &[4, 2], 0, 0)
            .tensor("b", &[64, 2], 8, 32)
            .data(32 + 136)
    }

    #[test]
    fn a_truthful_header_passes_with_its_sizes() {
        let h = checked(&valid()).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.metadata_count, 2);
        assert_eq!(h.alignment, 32);
        assert_eq!(h.data_offset % 32, 0);
        let sizes: Vec<(u64, &str)> = h.tensors.iter().map(|t| (t.bytes, t.kind.name)).collect();
        assert_eq!(sizes, vec![(32, "F32"), (136, "Q8_0")]);
    }

    #[test]
    fn an_alignment_of_zero_or_not_a_power_of_two_is_refused() {
        for value in [0u32, 3, 48] {
            let b = Builder::new().meta("general.alignment", 4, value.to_le_bytes().to_vec());
            assert!(refused(&b).contains("power of two"), "{value}");
        }
        let b = Builder::new().meta("general.alignment", 8, string("32"));
        assert!(refused(&b).contains("must be a uint32"));
    }

    #[test]
    fn tensors_that_lie_about_their_bytes_are_refused() {
        let misaligned = valid().tensor("c", &[4], 0, 200).data(400);
        assert!(refused(&misaligned).contains("not a multiple of the alignment 32"));
        let int32 = Builder::new().tensor("t", &[4], 26, 0).data(16);
        let err = refused(&int32);
        assert!(err.contains("'t' is stored as I32 (type 26)"), "{err}");
        let unknown = Builder::new().tensor("t", &[4], 200, 0).data(16);
        assert!(refused(&unknown).contains("unknown type 200"));
        let overflow = Builder::new().tensor("t", &[1 << 40, 1 << 40], 0, 0);
        assert!(refused(&overflow).contains("impossible shape"));
        // 2^62 elements fit an i64, their 2^64 bytes of F32 do not (found by the fuzzer: the
        // byte count wrapped to 0 and passed the bound on the file size).
        let bytes_overflow = Builder::new().tensor("t", &[1 << 31, 1 << 31], 0, 0);
        assert!(refused(&bytes_overflow).contains("impossible shape"));
        let empty = Builder::new().tensor("t", &[0], 0, 0);
        assert!(refused(&empty).contains("impossible shape"));
        let rows = Builder::new().tensor("t", &[48], 8, 0).data(64);
        assert!(refused(&rows).contains("not a multiple of Q8_0's block of 32"));
        let truncated = valid().data(100);
        assert!(refused(&truncated).contains("runs past the end"));
        let overlap = valid().tensor("c", &[8], 0, 32).data(400);
        assert!(refused(&overlap).contains("overlap"));
        let twice = valid().tensor("a", &[4], 0, 192).data(400);
        assert!(refused(&twice).contains("'a' appears twice"));
        let five = Builder::new().tensor("t", &[1, 1, 1, 1, 1], 0, 0).data(4);
        assert!(refused(&five).contains("5 dimensions"));
    }

    #[test]
    fn lengths_and_counts_beyond_the_file_are_refused_before_reading() {
        let mut bytes = valid().build();
        // The tensor count (bytes 8..16) claims 10^15 tensors.
        bytes[8..16].copy_from_slice(&1_000_000_000_000_000u64.to_le_bytes());
        let err = check(&mut std::io::Cursor::new(bytes)).unwrap_err();
        assert!(err.contains("more than the file's"), "{err}");
        // A string value claiming 2^60 bytes.
        let mut huge = (1u64 << 60).to_le_bytes().to_vec();
        huge.extend_from_slice(b"x");
        let b = Builder::new().meta("k", 8, huge);
        assert!(refused(&b).contains("more than the"));
        // An array of 2^40 u32.
        let mut array = 4u32.to_le_bytes().to_vec();
        array.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let b = Builder::new().meta("k", 9, array);
        assert!(refused(&b).contains("more than the"));
        // An array of 2^40 strings, each at least 8 bytes.
        let mut strings = 8u32.to_le_bytes().to_vec();
        strings.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let b = Builder::new().meta("k", 9, strings);
        assert!(refused(&b).contains("more than the file can hold"));
        // A key claiming 1 GiB.
        let mut bytes = Builder::new().meta("key", 4, vec![0; 4]).build();
        bytes[24..32].copy_from_slice(&(1u64 << 30).to_le_bytes());
        let err = check(&mut std::io::Cursor::new(bytes)).unwrap_err();
        assert!(err.contains("a metadata key at byte 24"), "{err}");
        // Cut inside the metadata.
        let mut bytes = valid().build();
        bytes.truncate(40);
        let err = check(&mut std::io::Cursor::new(bytes)).unwrap_err();
        assert!(
            err.contains("ends inside") || err.contains("more than"),
            "{err}"
        );
    }

    #[test]
    fn bad_keys_types_and_magic_are_refused() {
        let b = Builder::new()
            .meta("k", 4, vec![0; 4])
            .meta("k", 4, vec![0; 4]);
        assert!(refused(&b).contains("'k' appears twice"));
        let b = Builder::new().meta("k", 13, vec![0; 4]);
        assert!(refused(&b).contains("unknown type 13"));
        let mut bytes = valid().build();
        bytes[0] = b'X';
        assert!(
            check(&mut std::io::Cursor::new(bytes))
                .unwrap_err()
                .contains("not a GGUF")
        );
        let mut bytes = valid().build();
        bytes[4] = 9;
        assert!(
            check(&mut std::io::Cursor::new(bytes))
                .unwrap_err()
                .contains("version 9")
        );
    }

    #[test]
    fn names_are_shown_escaped_and_short() {
        assert_eq!(shown("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), 81);
    }
}
