//! Dense weights read in place from their file. A matrix stored in the dtype the model
//! computes in, in row-major order (safetensors, and GGUF's f32/f16/bf16 tensors but for the
//! q/k rows llama.cpp's converter reorders), is what the kernels read anyway: it is mapped, not
//! copied. Loading does not copy it, and processes running the same file (two ARMs' playgrounds,
//! a sweep beside the TUI) share one set of its pages in the kernel's file cache.
//!
//! The map is read-only and private. Its pages are resident once read, as a copy's would be,
//! and the kernel may drop and re-read them under memory pressure instead of swapping them.
//! What a map cannot protect against: a file truncated while a model runs from it makes the
//! next read of a missing page end the process (SIGBUS), as with every mmap-based loader
//! (llama.cpp's default). genarm's own writers never do that: they write a temporary file and
//! rename it over the old one, whose pages stay valid for the maps that hold them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::model::dense_rows::DenseRows;
use crate::engine::model::preflight;

/// A weight file mapped for reading, shared by the matrices read from it.
pub struct FileMap {
    path: PathBuf,
    map: memmap2::Mmap,
}

impl FileMap {
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
        // SAFETY: the map is read-only and private; its contents change only if another
        // process writes the file in place or truncates it while it is mapped, which the
        // module's comment documents as the risk every mmap-based loader takes. Every read
        // goes through `MappedMatrix`, whose byte range was checked against the map's length.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| EngineError::io(path, e))?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            map,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file, for reading its header.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// Whether a matrix of `dtype` whose values start `offset` bytes into its file can be read in
/// place, as far as its header tells: the dtype is one the kernels read (f32, f16, bf16), the
/// start is aligned for it (a map begins on a page, so the offset decides), and the CPU is
/// little-endian as the files are. `MappedMatrix::new` also checks the bytes are in the file;
/// `genarm inspect` asks this without mapping anything.
pub fn can_read_in_place(offset: u64, dtype: DType) -> bool {
    cfg!(target_endian = "little")
        && matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
        && offset.is_multiple_of(dtype.size_in_bytes() as u64)
}

/// A `rows` x `cols` matrix of f32, f16 or bf16 values at `offset` in a mapped file.
#[derive(Clone)]
pub struct MappedMatrix {
    file: Arc<FileMap>,
    /// The tensor's name in its file, for messages.
    name: Arc<str>,
    offset: usize,
    rows: usize,
    cols: usize,
    dtype: DType,
}

impl MappedMatrix {
    /// The matrix at `offset` of `file`. None where it cannot be read in place: the dtype is
    /// not f32, f16 or bf16, the bytes are not all in the file, their start is not aligned
    /// for the dtype (safetensors does not promise it), or the CPU is big-endian (the files
    /// are little-endian). Such matrices are copied, as before.
    pub fn new(
        file: &Arc<FileMap>,
        name: &str,
        offset: usize,
        rows: usize,
        cols: usize,
        dtype: DType,
    ) -> Option<Self> {
        if !can_read_in_place(offset as u64, dtype) {
            return None;
        }
        let len = rows.checked_mul(cols)?.checked_mul(dtype.size_in_bytes())?;
        let bytes = file.map.get(offset..offset.checked_add(len)?)?;
        let matrix = Self {
            file: file.clone(),
            name: name.into(),
            offset,
            rows,
            cols,
            dtype,
        };
        // The alignment check itself: the cast fails where the start is misaligned.
        matrix.cast(bytes)?;
        Some(matrix)
    }

    /// (rows, cols).
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn bytes(&self) -> &[u8] {
        let len = self.rows * self.cols * self.dtype.size_in_bytes();
        // Checked against the map in `new`; the map never changes length.
        self.file
            .map
            .get(self.offset..self.offset + len)
            .unwrap_or_default()
    }

    fn cast<'a>(&self, bytes: &'a [u8]) -> Option<DenseRows<'a>> {
        Some(match self.dtype {
            DType::F32 => DenseRows::F32(bytemuck::try_cast_slice(bytes).ok()?),
            DType::F16 => DenseRows::F16(bytemuck::try_cast_slice(bytes).ok()?),
            DType::BF16 => DenseRows::Bf16(bytemuck::try_cast_slice(bytes).ok()?),
            _ => return None,
        })
    }

    /// The values, read in place.
    pub fn values(&self) -> DenseRows<'_> {
        // `new` made the same cast of the same bytes, so it cannot fail here; an empty f32
        // matrix would only stand in for a bug, and then shape checks would report it.
        self.cast(self.bytes()).unwrap_or(DenseRows::F32(&[]))
    }

    /// Rows `first..first + count` as a matrix of their own (a fused projection's part);
    /// None past the end.
    pub fn row_range(&self, first: usize, count: usize) -> Option<Self> {
        if first.checked_add(count)? > self.rows {
            return None;
        }
        let offset = self.offset + first * self.cols * self.dtype.size_in_bytes();
        let mut part = Self::new(&self.file, "", offset, count, self.cols, self.dtype)?;
        part.name = self.name.clone();
        Some(part)
    }

    /// A copy as a candle tensor (training's tracked products, LoRA merges).
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        self.values().to_tensor(&[self.rows, self.cols], device)
    }

    /// The matrix, or the loader's error where it holds a NaN or infinity. Every page is read
    /// once here, as a copy would read it.
    pub fn checked(self) -> Result<Self> {
        match preflight::first_non_finite(self.bytes(), self.dtype) {
            Some(i) => Err(preflight::non_finite_error(self.path(), &self.name, i)),
            None => Ok(self),
        }
    }

    /// Where its values start: its file and the offset in it. Two matrices with the same
    /// start read the same pages (a tied embedding and its output layer).
    pub fn start(&self) -> (&Path, usize) {
        (self.file.path(), self.offset)
    }

    /// Bytes of the matrix.
    pub fn size(&self) -> usize {
        self.rows * self.cols * self.dtype.size_in_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, Arc<FileMap>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        let map = FileMap::open(f.path()).unwrap();
        (f, map)
    }

    #[test]
    fn values_are_the_files_little_endian_values_in_place() {
        let values = [1.5f32, -2.0, 0.25, 3.0, 4.0, -0.5];
        let mut bytes = vec![0u8; 8];
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let (_f, map) = file_of(&bytes);
        let m = MappedMatrix::new(&map, "w", 8, 2, 3, DType::F32).unwrap();
        assert_eq!(m.dims(), (2, 3));
        let DenseRows::F32(read) = m.values() else {
            panic!("not f32")
        };
        assert_eq!(read, values);
        let second = m.row_range(1, 1).unwrap();
        let DenseRows::F32(row) = second.values() else {
            panic!("not f32")
        };
        assert_eq!(row, &values[3..]);
        assert!(m.row_range(1, 2).is_none());
        let t = m.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            [[1.5, -2.0, 0.25], [3.0, 4.0, -0.5]]
        );
    }

    #[test]
    fn misaligned_short_or_non_float_matrices_are_not_mapped() {
        let bytes = vec![0u8; 64];
        let (_f, map) = file_of(&bytes);
        // f32 at an odd offset: misaligned; f16 at an even one is fine.
        assert!(MappedMatrix::new(&map, "w", 2, 2, 2, DType::F32).is_none());
        assert!(MappedMatrix::new(&map, "w", 2, 2, 2, DType::F16).is_some());
        assert!(MappedMatrix::new(&map, "w", 1, 2, 2, DType::F16).is_none());
        // Past the end of the file, and sizes that overflow.
        assert!(MappedMatrix::new(&map, "w", 32, 3, 4, DType::F32).is_none());
        assert!(MappedMatrix::new(&map, "w", 0, usize::MAX, 2, DType::F32).is_none());
        assert!(MappedMatrix::new(&map, "w", usize::MAX, 1, 1, DType::F16).is_none());
        assert!(MappedMatrix::new(&map, "w", 0, 2, 2, DType::U32).is_none());
    }

    #[test]
    fn a_non_finite_value_is_the_loaders_error_naming_the_file_and_tensor() {
        let mut bytes: Vec<u8> = [1.0f32, 2.0, f32::NAN, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (f, map) = file_of(&bytes);
        let m = MappedMatrix::new(&map, "w", 0, 2, 2, DType::F32).unwrap();
        let err = m.checked().err().unwrap().to_string();
        assert!(err.contains("'w'") && err.contains("element 2"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        bytes[8..12].copy_from_slice(&3f32.to_le_bytes());
        let (_g, map) = file_of(&bytes);
        let m = MappedMatrix::new(&map, "w", 0, 2, 2, DType::F32).unwrap();
        assert!(m.checked().is_ok());
    }
}
