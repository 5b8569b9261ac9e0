//! Datasets: a generated stand-in for MNIST, MNIST-format IDX folders, and
//! CIFAR-10's binary batches.
//!
//! Everything downstream sees a [`Dataset`]: two [`Split`]s of images in
//! [0,1] (any [`Shape`], channels last) with labels, and a fingerprint so that a report can say exactly
//! which data a tournament ran on.

pub mod cifar;
pub mod idx;
pub mod shape;
pub mod synthetic;

pub use idx::{load_idx_dir, resolve_named, DataError};
pub use shape::Shape;
pub use synthetic::synthetic_digits;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::rng::{fnv1a, FNV_OFFSET};

/// The folder a dataset is read from: `path` when given, else the named
/// dataset's default location; `None` for the generated synthetic digits.
pub fn source_dir(dataset: &str, path: Option<&Path>) -> Result<Option<PathBuf>, DataError> {
    match (dataset, path) {
        ("synthetic-digits", _) | ("idx", None) => Ok(None),
        (_, Some(path)) => Ok(Some(path.to_path_buf())),
        ("cifar10", None) => Ok(Some(cifar::default_dir())),
        (named, None) => resolve_named(named).map(Some),
    }
}

/// The number of classes of every dataset redqueen reads (MNIST,
/// Fashion-MNIST, IDX folders, CIFAR-10).
pub const CLASSES: usize = 10;

/// One split of a dataset: images as f32 in [0,1], `shape.dim()` values per
/// image, channels last (see [`Shape`]).
#[derive(Clone, Debug)]
pub struct Split {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub shape: Shape,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels * rows * cols`).
    pub fn dim(&self) -> usize {
        self.shape.dim()
    }

    /// The pixels of image `i`. Panics if `i >= len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[f32] {
        let dim = self.dim();
        &self.images[i * dim..(i + 1) * dim]
    }

    /// The images at `indices`, in that order (copies).
    /// Panics on an index out of range, like slice indexing.
    pub fn subset(&self, indices: &[usize]) -> Split {
        let mut images = Vec::with_capacity(indices.len() * self.dim());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Split {
            images,
            labels,
            shape: self.shape,
        }
    }

    /// The first `n` images (copies). Panics if `n > len()`.
    fn prefix(&self, n: usize) -> Split {
        Split {
            images: self.images[..n * self.dim()].to_vec(),
            labels: self.labels[..n].to_vec(),
            shape: self.shape,
        }
    }

    /// Feeds shape, labels and pixel bits into an FNV-1a hash.
    pub fn hash_into(&self, mut hash: u64) -> u64 {
        // The shape goes in too, so that 28x28 and 14x56 data with the same
        // bytes do not share a fingerprint. Channels only when more than
        // one, so that grayscale fingerprints stay what they always were.
        if self.shape.channels != 1 {
            hash = fnv1a(&(self.shape.channels as u64).to_le_bytes(), hash);
        }
        for n in [self.shape.rows, self.shape.cols, self.len()] {
            hash = fnv1a(&(n as u64).to_le_bytes(), hash);
        }
        hash = fnv1a(&self.labels, hash);
        // Hash in chunks: one call per pixel would be needlessly slow in
        // debug builds, and a bytes buffer of the whole split would double
        // the memory held.
        let mut buf = [0u8; 4 * 1024];
        for chunk in self.images.chunks(1024) {
            for (dst, px) in buf.chunks_exact_mut(4).zip(chunk) {
                dst.copy_from_slice(&px.to_bits().to_le_bytes());
            }
            hash = fnv1a(&buf[..4 * chunk.len()], hash);
        }
        hash
    }
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub train: Split,
    pub test: Split,
    pub classes: usize,
    /// hex FNV-1a-64 of the label and pixel contents of both splits
    /// (see [`fingerprint`]).
    pub fingerprint: String,
}

/// Hex FNV-1a-64 over both splits: for each of train then test, its rows,
/// cols and image count (u64 little-endian), its labels, then its pixels as
/// f32 bits (little-endian).
pub fn fingerprint(train: &Split, test: &Split) -> String {
    let hash = test.hash_into(train.hash_into(FNV_OFFSET));
    format!("{hash:016x}")
}

impl Dataset {
    /// Builds a dataset and computes its fingerprint.
    pub fn new(name: impl Into<String>, train: Split, test: Split, classes: usize) -> Dataset {
        let fingerprint = fingerprint(&train, &test);
        Dataset {
            name: name.into(),
            train,
            test,
            classes,
            fingerprint,
        }
    }

    /// Keep the first `train` and `test` images of each split (error if
    /// larger than available, naming split, asked and available).
    pub fn truncate(self, train: usize, test: usize) -> Result<Dataset, DataError> {
        for (split, asked, available) in [("train", train, self.train.len()), ("test", test, self.test.len())] {
            if asked > available {
                return Err(DataError::NotEnoughImages {
                    dataset: self.name.clone(),
                    split,
                    asked,
                    available,
                });
            }
        }
        if train == self.train.len() && test == self.test.len() {
            // Nothing changes, so the (costly on full MNIST) hash stays valid.
            return Ok(self);
        }
        let train = self.train.prefix(train);
        let test = self.test.prefix(test);
        Ok(Dataset::new(self.name, train, test, self.classes))
    }
}

/// The image size (rows, cols) in the headers of an IDX folder's train and
/// test images files, read from their first 16 bytes (gunzipping only
/// those), for each file that is present and starts like an images file.
/// Files that are missing or malformed are left out: loading reports them.
pub fn idx_image_sizes(dir: &Path) -> Vec<(PathBuf, usize, usize)> {
    [idx::IdxFile::TrainImages, idx::IdxFile::TestImages]
        .into_iter()
        .filter_map(|which| idx::find_idx_file(dir, which).ok())
        .filter_map(|path| {
            let (rows, cols) = peek_image_size(&path)?;
            Some((path, rows, cols))
        })
        .collect()
}

fn peek_image_size(path: &Path) -> Option<(usize, usize)> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 16];
    let mut start = [0u8; 2];
    file.read_exact(&mut start).ok()?;
    let mut reader: Box<dyn Read> = if start == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::Read::chain(
            &start[..],
            file,
        )))
    } else {
        Box::new(std::io::Read::chain(&start[..], file))
    };
    reader.read_exact(&mut head).ok()?;
    let word = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]) as usize;
    (word(0) == idx::IMAGES_MAGIC as usize).then(|| (word(8), word(12)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(n: usize) -> Split {
        Split {
            images: (0..n * 4).map(|i| i as f32 / (n * 4) as f32).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            shape: Shape::gray(2, 2),
        }
    }

    #[test]
    fn split_accessors_and_subset() {
        let s = split(5);
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert_eq!(s.dim(), 4);
        assert_eq!(s.image(1), &s.images[4..8]);
        let sub = s.subset(&[3, 0, 3]);
        assert_eq!(sub.len(), 3);
        assert_eq!(sub.labels, vec![3, 0, 3]);
        assert_eq!(sub.image(0), s.image(3));
        assert_eq!(sub.image(1), s.image(0));
        assert_eq!(sub.image(2), s.image(3));
        assert!(s.subset(&[]).is_empty());
    }

    #[test]
    fn truncate_keeps_prefix_and_updates_fingerprint() {
        let d = Dataset::new("t", split(6), split(4), 10);
        let same = d.clone().truncate(6, 4).expect("same size");
        assert_eq!(same.fingerprint, d.fingerprint);
        let t = d.clone().truncate(3, 2).expect("smaller");
        assert_eq!(t.train.len(), 3);
        assert_eq!(t.test.len(), 2);
        assert_eq!(t.train.image(2), d.train.image(2));
        assert_eq!(t.fingerprint, fingerprint(&t.train, &t.test));
        assert_ne!(t.fingerprint, d.fingerprint);
        assert_eq!(t.fingerprint.len(), 16);
    }

    #[test]
    fn truncate_too_large_names_split_asked_available() {
        let d = Dataset::new("t", split(6), split(4), 10);
        let err = d.clone().truncate(6, 5).unwrap_err();
        match &err {
            DataError::NotEnoughImages {
                split,
                asked,
                available,
                ..
            } => {
                assert_eq!((*split, *asked, *available), ("test", 5, 4));
            }
            other => panic!("wrong error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("test") && msg.contains('5') && msg.contains('4'), "{msg}");
        assert!(matches!(
            d.truncate(7, 0),
            Err(DataError::NotEnoughImages { split: "train", .. })
        ));
    }

    #[test]
    fn image_sizes_are_read_from_raw_and_gzipped_headers() {
        let dir = tempfile::tempdir().unwrap();
        let header = |n: u32, rows: u32, cols: u32| -> Vec<u8> {
            [idx::IMAGES_MAGIC, n, rows, cols]
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .chain(std::iter::repeat_n(0u8, (n * rows * cols) as usize))
                .collect()
        };
        // Nothing there: nothing to tell.
        assert!(idx_image_sizes(dir.path()).is_empty());
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), header(2, 32, 30)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &header(1, 28, 28)).unwrap();
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
        let sizes = idx_image_sizes(dir.path());
        assert_eq!(sizes.len(), 2, "{sizes:?}");
        assert_eq!((sizes[0].1, sizes[0].2), (32, 30));
        assert!(sizes[0].0.ends_with("train-images-idx3-ubyte"));
        assert_eq!((sizes[1].1, sizes[1].2), (28, 28));
        // A wrong magic number or a short file is left to the loader.
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), [0u8, 0, 8, 1, 0]).unwrap();
        assert_eq!(idx_image_sizes(dir.path()).len(), 1);
    }

    #[test]
    fn fingerprint_sees_labels_pixels_and_shape() {
        let base = fingerprint(&split(3), &split(2));
        let mut s = split(3);
        s.labels[0] = 9;
        assert_ne!(fingerprint(&s, &split(2)), base);
        let mut s = split(3);
        s.images[5] += 1e-6;
        assert_ne!(fingerprint(&s, &split(2)), base);
        let mut s = split(3);
        s.shape = Shape::gray(1, 4);
        assert_ne!(fingerprint(&s, &split(2)), base);
        // Four one-pixel images of 4 channels are not 1x4 grayscale.
        let mut s = split(3);
        s.shape = Shape {
            channels: 4,
            rows: 1,
            cols: 1,
        };
        assert_ne!(fingerprint(&s, &split(2)), base);
        // Swapping splits is a different dataset.
        assert_ne!(fingerprint(&split(2), &split(3)), base);
    }
}
