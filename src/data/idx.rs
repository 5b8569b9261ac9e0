//! Reading MNIST-format IDX folders (MNIST, Fashion-MNIST, and look-alikes).
//!
//! A folder holds four files: train and test (`t10k`) images and labels, each
//! raw or gzipped. Every input is untrusted: the header counts are checked
//! against the bytes actually present before anything is sized from them,
//! and every failure names the file and what was expected.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Dataset, Split};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Header bytes: magic, count, rows, cols (u32 big-endian each).
const IMAGES_HEADER: usize = 16;
/// Header bytes: magic, count.
const LABELS_HEADER: usize = 8;
/// MNIST-format datasets are digits or ten kinds of clothing.
pub const IDX_CLASSES: usize = 10;
/// Cap on decompressed size: full MNIST train images are 47 MB, so this only
/// stops a gzip bomb from exhausting memory.
pub const MAX_DECOMPRESSED: u64 = 1 << 31;

/// The dataset names that [`resolve_named`] knows.
pub const NAMED_DATASETS: [&str; 2] = ["mnist", "fashion-mnist"];
/// The environment variable naming a folder that holds `<name>/` folders.
pub const DATA_ENV: &str = "REDQUEEN_DATA";
/// Where Debian's `dataset-*` packages install (dataset-fashion-mnist puts
/// the four `.gz` files in `/usr/share/datasets/fashion-mnist/`).
pub const SYSTEM_DATA_DIR: &str = "/usr/share/datasets";

/// One of the four files of an IDX folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxFile {
    TrainImages,
    TrainLabels,
    TestImages,
    TestLabels,
}

impl IdxFile {
    pub const ALL: [IdxFile; 4] = [
        IdxFile::TrainImages,
        IdxFile::TrainLabels,
        IdxFile::TestImages,
        IdxFile::TestLabels,
    ];

    /// The canonical file name (without `.gz`).
    pub fn canonical_name(self) -> &'static str {
        self.base_names()[0]
    }

    /// Accepted names without `.gz`, preferred first. Some distributions
    /// write `train-images.idx3-ubyte` (a dot before `idx`).
    pub fn base_names(self) -> [&'static str; 2] {
        match self {
            IdxFile::TrainImages => ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
            IdxFile::TrainLabels => ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
            IdxFile::TestImages => ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
            IdxFile::TestLabels => ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
        }
    }

    /// Every accepted file name, in the order they are tried: raw before
    /// gzipped, so an unpacked copy beside its archive wins (faster to read).
    pub fn candidate_names(self) -> Vec<String> {
        let mut names = Vec::with_capacity(4);
        for base in self.base_names() {
            names.push(base.to_string());
            names.push(format!("{base}.gz"));
        }
        names
    }

    fn describe(self) -> &'static str {
        match self {
            IdxFile::TrainImages => "train images",
            IdxFile::TrainLabels => "train labels",
            IdxFile::TestImages => "test images",
            IdxFile::TestLabels => "test labels",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "dataset folder {} does not exist or is not a folder; it should hold {}",
        .dir.display(), expected_files()
    )]
    FolderMissing { dir: PathBuf },

    #[error(
        "CIFAR-10 folder {} does not exist or is not a folder; it should hold the binary version's {} \
         (unpacked from cifar-10-binary.tar.gz); set `data.path`, or {} to a folder with a {}/ subfolder",
        .dir.display(), super::cifar::TRAIN_FILES.iter().chain([&super::cifar::TEST_FILE]).copied().collect::<Vec<_>>().join(", "),
        DATA_ENV, super::cifar::FOLDER
    )]
    CifarFolderMissing { dir: PathBuf },

    #[error(
        "{} holds a {}/ folder but no batch files: give that folder itself ({}) as the path",
        .dir.display(), super::cifar::FOLDER, .dir.join(super::cifar::FOLDER).display()
    )]
    CifarParentGiven { dir: PathBuf },

    #[error(
        "{}: truncated: {found} bytes is not a whole number of {}-byte CIFAR-10 records (1 label byte, then 3x32x32 pixels); the last record is cut after {} bytes",
        .path.display(), super::cifar::RECORD, .found % super::cifar::RECORD
    )]
    CifarTruncated { path: PathBuf, found: usize },

    #[error("{what} file missing in {}: looked for {}", .dir.display(), .tried.join(", "))]
    FileMissing {
        dir: PathBuf,
        what: &'static str,
        tried: Vec<String>,
    },

    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{} starts with the gzip magic bytes 1f 8b but is not valid gzip: {source}", .path.display())]
    BadGzip { path: PathBuf, source: std::io::Error },

    #[error("{} holds (or decompresses to) more than {limit} bytes, far beyond any dataset redqueen reads", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },

    #[error(
        "{}: wrong magic number: expected {expected:#010x} ({kind}), found {found:#010x}",
        .path.display()
    )]
    BadMagic {
        path: PathBuf,
        kind: &'static str,
        expected: u32,
        found: u32,
    },

    #[error(
        "{}: file has {found} bytes, shorter than the {needed}-byte IDX {kind} header",
        .path.display()
    )]
    HeaderTruncated {
        path: PathBuf,
        kind: &'static str,
        needed: usize,
        found: usize,
    },

    #[error("{}: truncated: header says {header}, file has {found} bytes after the header", .path.display())]
    Truncated {
        path: PathBuf,
        /// What the header promises, e.g. "60000 images of 28x28 = 47040000 bytes".
        header: String,
        /// Data bytes after the header.
        found: usize,
    },

    #[error(
        "{}: {extra} unexpected bytes at the end: header says {header}, file has {found} bytes after the header",
        .path.display()
    )]
    TrailingBytes {
        path: PathBuf,
        header: String,
        found: usize,
        extra: usize,
    },

    #[error("{}: empty: {what}", .path.display())]
    Empty { path: PathBuf, what: String },

    #[error(
        "image and label counts disagree: {} has {images} images, {} has {labels} labels",
        .images_path.display(), .labels_path.display()
    )]
    CountMismatch {
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },

    #[error("{}: label {index} is {value}, expected less than {classes}", .path.display())]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        value: u8,
        classes: usize,
    },

    #[error(
        "image size differs between train and test: {} has {train_rows}x{train_cols}, {} has {test_rows}x{test_cols}",
        .train_path.display(), .test_path.display()
    )]
    ImageSizeMismatch {
        train_path: PathBuf,
        train_rows: usize,
        train_cols: usize,
        test_path: PathBuf,
        test_rows: usize,
        test_cols: usize,
    },

    #[error("unknown dataset name {name:?}; valid names: {}", NAMED_DATASETS.join(", "))]
    UnknownName { name: String },

    #[error("dataset {name} not found; looked in {}. {hint}", list_paths(.looked))]
    NotFound {
        name: String,
        looked: Vec<PathBuf>,
        hint: String,
    },

    #[error(
        "dataset {dataset}: `data.{split}` = {asked}, but its {split} split has only {available} images; \
         set `data.{split}` to at most {available}"
    )]
    NotEnoughImages {
        dataset: String,
        split: &'static str,
        asked: usize,
        available: usize,
    },
}

fn expected_files() -> String {
    let names: Vec<String> = IdxFile::ALL
        .iter()
        .map(|f| format!("{}[.gz]", f.canonical_name()))
        .collect();
    names.join(", ")
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no places".to_string();
    }
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic
/// bytes 1f 8b (whatever its name says: some mirrors serve gzip without the
/// `.gz`, and some `.gz` files were already unpacked by a browser).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    // MultiGz: a file may hold several concatenated gzip members.
    let decoder = flate2::read::MultiGzDecoder::new(bytes.as_slice());
    let mut out = Vec::new();
    decoder
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|source| DataError::BadGzip {
            path: path.to_path_buf(),
            source,
        })?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_DECOMPRESSED,
        });
    }
    Ok(out)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    // Callers check the length first; the fallback only keeps this panic-free.
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Checks the magic number and that the file holds at least a full header.
fn check_header(bytes: &[u8], file: &Path, kind: &'static str, magic: u32, header_len: usize) -> Result<(), DataError> {
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: file.to_path_buf(),
            what: "file has 0 bytes".to_string(),
        });
    }
    // A wrong magic says more ("this is a labels file") than a short header,
    // so it is checked as soon as there are 4 bytes.
    if bytes.len() >= 4 {
        let found = be_u32(bytes, 0);
        if found != magic {
            return Err(DataError::BadMagic {
                path: file.to_path_buf(),
                kind,
                expected: magic,
                found,
            });
        }
    }
    if bytes.len() < header_len {
        return Err(DataError::HeaderTruncated {
            path: file.to_path_buf(),
            kind,
            needed: header_len,
            found: bytes.len(),
        });
    }
    Ok(())
}

/// Compares the data length the header promises with what is there.
/// `expected` is u128 so that absurd header counts cannot overflow.
fn check_data_len(file: &Path, header: String, expected: u128, found: usize) -> Result<(), DataError> {
    let found_wide = found as u128;
    if found_wide < expected {
        return Err(DataError::Truncated {
            path: file.to_path_buf(),
            header,
            found,
        });
    }
    if found_wide > expected {
        return Err(DataError::TrailingBytes {
            path: file.to_path_buf(),
            header,
            found,
            // found > expected, so expected fits in usize.
            extra: found - expected as usize,
        });
    }
    Ok(())
}

/// Parses an IDX images file (already decompressed): returns the image
/// count, rows, cols and the pixel bytes (`n * rows * cols` of them).
pub fn parse_idx_images(bytes: &[u8], file: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    check_header(
        bytes,
        file,
        "images, 3-dimensional unsigned bytes",
        IMAGES_MAGIC,
        IMAGES_HEADER,
    )?;
    let n = be_u32(bytes, 4);
    let rows = be_u32(bytes, 8);
    let cols = be_u32(bytes, 12);
    if n == 0 || rows == 0 || cols == 0 {
        return Err(DataError::Empty {
            path: file.to_path_buf(),
            what: format!("header says {n} images of {rows}x{cols}"),
        });
    }
    let data = &bytes[IMAGES_HEADER..];
    let expected = n as u128 * rows as u128 * cols as u128;
    let header = format!("{n} images of {rows}x{cols} = {expected} bytes");
    check_data_len(file, header, expected, data.len())?;
    // The length check passed, so every product below fits in usize.
    Ok((n as usize, rows as usize, cols as usize, data.to_vec()))
}

/// Parses an IDX labels file (already decompressed): returns the labels.
/// Their range is checked by [`check_labels`], which knows the class count.
pub fn parse_idx_labels(bytes: &[u8], file: &Path) -> Result<Vec<u8>, DataError> {
    check_header(
        bytes,
        file,
        "labels, 1-dimensional unsigned bytes",
        LABELS_MAGIC,
        LABELS_HEADER,
    )?;
    let n = be_u32(bytes, 4);
    if n == 0 {
        return Err(DataError::Empty {
            path: file.to_path_buf(),
            what: "header says 0 labels".to_string(),
        });
    }
    let data = &bytes[LABELS_HEADER..];
    let header = format!("{n} labels = {n} bytes");
    check_data_len(file, header, n as u128, data.len())?;
    Ok(data.to_vec())
}

/// Errors on the first label that is not below `classes`.
pub fn check_labels(labels: &[u8], classes: usize, file: &Path) -> Result<(), DataError> {
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(index) => Err(DataError::LabelOutOfRange {
            path: file.to_path_buf(),
            index,
            value: labels[index],
            classes,
        }),
        None => Ok(()),
    }
}

/// The path of `which` in `dir`, trying every accepted name. A name that
/// is there but no regular file (a pipe, a device, a folder) is named as
/// such: reading it could hang, and "missing" would send the user looking
/// for a file that is there.
pub fn find_idx_file(dir: &Path, which: IdxFile) -> Result<PathBuf, DataError> {
    let names = which.candidate_names();
    let paths: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    if let Some(found) = paths.iter().find(|path| path.is_file()) {
        return Ok(found.clone());
    }
    if let Some(odd) = paths.iter().find(|path| path.exists()) {
        return Err(DataError::Io {
            path: odd.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file (a folder, a pipe or a device); give the IDX file itself",
            ),
        });
    }
    Err(DataError::FileMissing {
        dir: dir.to_path_buf(),
        what: which.describe(),
        tried: names.clone(),
    })
}

/// Reads one split from its images and labels files.
fn load_split(images_path: &Path, labels_path: &Path) -> Result<Split, DataError> {
    let (n, rows, cols, pixels) = parse_idx_images(&read_maybe_gz(images_path)?, images_path)?;
    let labels = parse_idx_labels(&read_maybe_gz(labels_path)?, labels_path)?;
    if labels.len() != n {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: n,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    check_labels(&labels, IDX_CLASSES, labels_path)?;
    let images = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    Ok(Split {
        images,
        labels,
        shape: super::Shape::gray(rows, cols),
    })
}

/// Loads an MNIST-format folder: `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, each raw or gzipped (with or without `.gz`),
/// also under the `train-images.idx3-ubyte` spelling.
pub fn load_idx_dir(dir: &Path, name: &str) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::FolderMissing { dir: dir.to_path_buf() });
    }
    // Find all four before reading any, so a missing file is reported
    // without first spending a second on decompression.
    let train_images = find_idx_file(dir, IdxFile::TrainImages)?;
    let train_labels = find_idx_file(dir, IdxFile::TrainLabels)?;
    let test_images = find_idx_file(dir, IdxFile::TestImages)?;
    let test_labels = find_idx_file(dir, IdxFile::TestLabels)?;
    let train = load_split(&train_images, &train_labels)?;
    let test = load_split(&test_images, &test_labels)?;
    if (train.shape.rows, train.shape.cols) != (test.shape.rows, test.shape.cols) {
        return Err(DataError::ImageSizeMismatch {
            train_path: train_images,
            train_rows: train.shape.rows,
            train_cols: train.shape.cols,
            test_path: test_images,
            test_rows: test.shape.rows,
            test_cols: test.shape.cols,
        });
    }
    Ok(Dataset::new(name, train, test, IDX_CLASSES))
}

/// The folders searched for a named dataset, in order:
/// `$REDQUEEN_DATA/<name>`, then `/usr/share/datasets/<name>`.
pub fn search_dirs(name: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::with_capacity(2);
    if let Some(root) = std::env::var_os(DATA_ENV) {
        if !root.is_empty() {
            dirs.push(PathBuf::from(root).join(name));
        }
    }
    dirs.push(Path::new(SYSTEM_DATA_DIR).join(name));
    dirs
}

/// The folder for a named dataset (`mnist` or `fashion-mnist`).
pub fn resolve_named(name: &str) -> Result<PathBuf, DataError> {
    if !NAMED_DATASETS.contains(&name) {
        return Err(DataError::UnknownName { name: name.to_string() });
    }
    resolve_among(name, &search_dirs(name))
}

/// Picks the first folder holding all four files; failing that, the first
/// folder that exists at all, so that loading it reports precisely which
/// file is missing rather than a vague "not found".
fn resolve_among(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, DataError> {
    let complete = |dir: &PathBuf| IdxFile::ALL.iter().all(|&which| find_idx_file(dir, which).is_ok());
    if let Some(dir) = dirs.iter().find(|d| complete(d)) {
        return Ok(dir.clone());
    }
    if let Some(dir) = dirs.iter().find(|d| d.is_dir()) {
        return Ok(dir.clone());
    }
    Err(DataError::NotFound {
        name: name.to_string(),
        looked: dirs.to_vec(),
        hint: how_to_get(name),
    })
}

fn how_to_get(name: &str) -> String {
    let mut hint = format!(
        "To get it, set {DATA_ENV} to a folder with a {name}/ subfolder holding {}",
        expected_files()
    );
    if name == "fashion-mnist" {
        let _ = write!(
            hint,
            ", or on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` \
             (it installs into {SYSTEM_DATA_DIR}/fashion-mnist)"
        );
    }
    hint.push('.');
    hint
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::io::Write;

    fn images_bytes(n: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&rows.to_be_bytes());
        b.extend_from_slice(&cols.to_be_bytes());
        let pixels = n as usize * rows as usize * cols as usize;
        b.extend((0..pixels).map(|i| (i * 37 % 256) as u8));
        b
    }

    fn labels_bytes(labels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        b.extend_from_slice(labels);
        b
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).expect("gzip to memory");
        enc.finish().expect("gzip to memory")
    }

    /// A folder with a valid small dataset: 5 train and 3 test images, 4x3.
    fn write_valid(dir: &Path, gz: bool) {
        let files = [
            ("train-images-idx3-ubyte", images_bytes(5, 4, 3)),
            ("train-labels-idx1-ubyte", labels_bytes(&[0, 1, 2, 9, 4])),
            ("t10k-images-idx3-ubyte", images_bytes(3, 4, 3)),
            ("t10k-labels-idx1-ubyte", labels_bytes(&[7, 8, 9])),
        ];
        for (name, bytes) in files {
            if gz {
                std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).expect("write");
            } else {
                std::fs::write(dir.join(name), bytes).expect("write");
            }
        }
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    fn check_small(d: &Dataset) {
        assert_eq!(d.train.len(), 5);
        assert_eq!(d.test.len(), 3);
        assert_eq!((d.train.shape.rows, d.train.shape.cols), (4, 3));
        assert_eq!(d.classes, 10);
        assert_eq!(d.train.labels, vec![0, 1, 2, 9, 4]);
        assert_eq!(d.test.labels, vec![7, 8, 9]);
        assert_eq!(d.train.images.len(), 5 * 12);
        // Pixel i is (i*37 % 256) / 255.
        assert_eq!(d.train.images[1], 37.0 / 255.0);
        assert_eq!(d.train.images[7], (7 * 37 % 256) as f32 / 255.0);
        assert!(d.train.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }

    #[test]
    fn loads_raw_and_gzipped_folders_alike() {
        let raw = tempdir();
        write_valid(raw.path(), false);
        let a = load_idx_dir(raw.path(), "small").expect("raw loads");
        check_small(&a);
        assert_eq!(a.name, "small");

        let gz = tempdir();
        write_valid(gz.path(), true);
        let b = load_idx_dir(gz.path(), "small").expect("gz loads");
        check_small(&b);
        assert_eq!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn gzip_is_detected_by_content_not_name() {
        let dir = tempdir();
        write_valid(dir.path(), false);
        // Gzipped content under the raw name.
        let p = dir.path().join("train-images-idx3-ubyte");
        let raw = std::fs::read(&p).expect("read");
        std::fs::write(&p, gzip(&raw)).expect("write");
        // Raw content under a .gz name.
        let p = dir.path().join("t10k-labels-idx1-ubyte");
        std::fs::rename(&p, dir.path().join("t10k-labels-idx1-ubyte.gz")).expect("rename");
        check_small(&load_idx_dir(dir.path(), "x").expect("loads"));
    }

    #[test]
    fn accepts_dot_idx_spelling() {
        let dir = tempdir();
        write_valid(dir.path(), false);
        for (from, to) in [
            ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
            ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
        ] {
            std::fs::rename(dir.path().join(from), dir.path().join(to)).expect("rename");
        }
        check_small(&load_idx_dir(dir.path(), "x").expect("loads"));
    }

    #[test]
    fn missing_folder_names_expected_files() {
        let dir = tempdir();
        let missing = dir.path().join("nope");
        let err = load_idx_dir(&missing, "x").unwrap_err();
        assert!(matches!(err, DataError::FolderMissing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("nope"), "{msg}");
        for which in IdxFile::ALL {
            assert!(msg.contains(which.canonical_name()), "{msg}");
        }
    }

    #[test]
    fn missing_file_names_folder_and_candidates() {
        let dir = tempdir();
        write_valid(dir.path(), false);
        std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).expect("rm");
        let err = load_idx_dir(dir.path(), "x").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::FileMissing {
                    what: "test images",
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("t10k-images.idx3-ubyte"), "{msg}");
    }

    #[test]
    fn unreadable_file_is_io_error() {
        assert!(matches!(
            read_maybe_gz(Path::new("/nonexistent/redqueen/file")),
            Err(DataError::Io { .. })
        ));
        // A folder where a file should be: found by name, but not a file.
        let dir = tempdir();
        let p = dir.path().join("sub");
        std::fs::create_dir(&p).expect("mkdir");
        let err = read_maybe_gz(&p).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("sub"));
    }

    #[test]
    fn bad_gzip_is_reported() {
        let dir = tempdir();
        write_valid(dir.path(), false);
        let p = dir.path().join("train-labels-idx1-ubyte");
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).expect("write");
        let err = load_idx_dir(dir.path(), "x").unwrap_err();
        assert!(matches!(err, DataError::BadGzip { .. }), "{err:?}");
        // A gzip stream cut short is bad gzip too.
        let full = gzip(&images_bytes(5, 4, 3));
        std::fs::write(&p, &full[..full.len() / 2]).expect("write");
        assert!(matches!(read_maybe_gz(&p), Err(DataError::BadGzip { .. })));
    }

    #[test]
    fn wrong_magic_names_expected_and_found() {
        let dir = tempdir();
        write_valid(dir.path(), false);
        // Swap train images and labels.
        let a = dir.path().join("train-images-idx3-ubyte");
        let b = dir.path().join("train-labels-idx1-ubyte");
        let tmp = dir.path().join("swap");
        std::fs::rename(&a, &tmp).expect("rename");
        std::fs::rename(&b, &a).expect("rename");
        std::fs::rename(&tmp, &b).expect("rename");
        let err = load_idx_dir(dir.path(), "x").unwrap_err();
        match &err {
            DataError::BadMagic { expected, found, .. } => {
                assert_eq!((*expected, *found), (IMAGES_MAGIC, LABELS_MAGIC))
            }
            other => panic!("wrong error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("0x00000803") && msg.contains("0x00000801"), "{msg}");
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
        let err = parse_idx_labels(&images_bytes(1, 1, 1), Path::new("l")).unwrap_err();
        assert!(matches!(
            err,
            DataError::BadMagic {
                expected: LABELS_MAGIC,
                ..
            }
        ));
    }

    #[test]
    fn short_header_is_reported() {
        let p = Path::new("f");
        let img = images_bytes(2, 2, 2);
        let err = parse_idx_images(&img[..10], p).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::HeaderTruncated {
                    needed: 16,
                    found: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            parse_idx_images(&img[..2], p),
            Err(DataError::HeaderTruncated { .. })
        ));
        let lab = labels_bytes(&[1, 2]);
        assert!(matches!(
            parse_idx_labels(&lab[..7], p),
            Err(DataError::HeaderTruncated { needed: 8, .. })
        ));
    }

    #[test]
    fn truncated_data_says_header_and_file_sizes() {
        let p = Path::new("imgs");
        let img = images_bytes(3, 28, 28);
        let err = parse_idx_images(&img[..img.len() - 1], p).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("3 images of 28x28 = 2352 bytes"), "{msg}");
        assert!(msg.contains("2351"), "{msg}");
        let lab = labels_bytes(&[1, 2, 3]);
        assert!(matches!(
            parse_idx_labels(&lab[..lab.len() - 2], p),
            Err(DataError::Truncated { found: 1, .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let p = Path::new("f");
        let mut img = images_bytes(2, 2, 2);
        img.push(0);
        assert!(matches!(
            parse_idx_images(&img, p),
            Err(DataError::TrailingBytes { extra: 1, .. })
        ));
        let mut lab = labels_bytes(&[1]);
        lab.extend_from_slice(&[0, 0]);
        assert!(matches!(
            parse_idx_labels(&lab, p),
            Err(DataError::TrailingBytes { extra: 2, .. })
        ));
    }

    #[test]
    fn absurd_header_counts_do_not_allocate_or_panic() {
        let p = Path::new("f");
        let mut img = images_bytes(1, 1, 1);
        img[4..16].copy_from_slice(&[0xff; 12]);
        let err = parse_idx_images(&img, p).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        let mut lab = labels_bytes(&[1]);
        lab[4..8].copy_from_slice(&[0xff; 4]);
        assert!(matches!(parse_idx_labels(&lab, p), Err(DataError::Truncated { .. })));
    }

    #[test]
    fn counts_must_agree() {
        let dir = tempdir();
        write_valid(dir.path(), false);
        std::fs::write(dir.path().join("train-labels-idx1-ubyte"), labels_bytes(&[1, 2, 3, 4])).expect("write");
        let err = load_idx_dir(dir.path(), "x").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    images: 5,
                    labels: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("train-images") && msg.contains("train-labels"), "{msg}");
    }

    #[test]
    fn labels_must_be_below_ten() {
        let dir = tempdir();
        write_valid(dir.path(), true);
        std::fs::write(
            dir.path().join("t10k-labels-idx1-ubyte.gz"),
            gzip(&labels_bytes(&[1, 10, 200])),
        )
        .expect("write");
        let err = load_idx_dir(dir.path(), "x").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 1,
                    value: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("label 1 is 10"), "{err}");
    }

    #[test]
    fn image_sizes_must_agree() {
        let dir = tempdir();
        write_valid(dir.path(), false);
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), images_bytes(3, 3, 4)).expect("write");
        let err = load_idx_dir(dir.path(), "x").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ImageSizeMismatch {
                    train_rows: 4,
                    train_cols: 3,
                    test_rows: 3,
                    test_cols: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("4x3") && err.to_string().contains("3x4"));
    }

    #[test]
    fn empty_files_and_zero_counts_are_reported() {
        let p = Path::new("f");
        assert!(matches!(parse_idx_images(&[], p), Err(DataError::Empty { .. })));
        assert!(matches!(parse_idx_labels(&[], p), Err(DataError::Empty { .. })));
        assert!(matches!(
            parse_idx_images(&images_bytes(0, 28, 28), p),
            Err(DataError::Empty { .. })
        ));
        assert!(matches!(
            parse_idx_images(&images_bytes(3, 0, 28), p),
            Err(DataError::Empty { .. })
        ));
        assert!(matches!(
            parse_idx_labels(&labels_bytes(&[]), p),
            Err(DataError::Empty { .. })
        ));
        // An empty file on disk, and an empty gzip stream.
        let dir = tempdir();
        write_valid(dir.path(), false);
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), []).expect("write");
        let err = load_idx_dir(dir.path(), "x").unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
        assert!(err.to_string().contains("train-images-idx3-ubyte"));
        let gz = dir.path().join("e.gz");
        std::fs::write(&gz, gzip(&[])).expect("write");
        let bytes = read_maybe_gz(&gz).expect("empty gzip is valid gzip");
        assert!(matches!(parse_idx_labels(&bytes, &gz), Err(DataError::Empty { .. })));
    }

    /// Every prefix, and random corruptions, of valid files: errors, never panics.
    #[test]
    fn parsers_never_panic() {
        let p = Path::new("fuzz");
        let img = images_bytes(3, 5, 4);
        let lab = labels_bytes(&[1, 2, 3]);
        for len in 0..img.len() {
            assert!(parse_idx_images(&img[..len], p).is_err());
        }
        for len in 0..lab.len() {
            assert!(parse_idx_labels(&lab[..len], p).is_err());
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..5000 {
            let mut a = img.clone();
            let mut b = lab.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..a.len());
                a[i] = rng.gen();
                let j = rng.gen_range(0..b.len());
                b[j] = rng.gen();
            }
            let cut = rng.gen_range(0..=a.len());
            let _ = parse_idx_images(&a[..cut], p);
            let _ = parse_idx_images(&a, p);
            let _ = parse_idx_labels(&b, p);
            let len = rng.gen_range(0..64);
            let noise: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let _ = parse_idx_images(&noise, p);
            let _ = parse_idx_labels(&noise, p);
        }
    }

    #[test]
    fn resolve_rejects_unknown_names() {
        let err = resolve_named("cifar").unwrap_err();
        assert!(matches!(err, DataError::UnknownName { .. }));
        let msg = err.to_string();
        assert!(msg.contains("mnist") && msg.contains("fashion-mnist"), "{msg}");
    }

    #[test]
    fn resolve_prefers_complete_folder_then_existing_then_explains() {
        let root = tempdir();
        let empty = root.path().join("a/mnist");
        let full = root.path().join("b/mnist");
        let absent = root.path().join("c/mnist");
        std::fs::create_dir_all(&empty).expect("mkdir");
        std::fs::create_dir_all(&full).expect("mkdir");
        write_valid(&full, true);
        let dirs = vec![absent.clone(), empty.clone(), full.clone()];
        assert_eq!(resolve_among("mnist", &dirs).expect("found"), full);
        let dirs = vec![absent.clone(), empty.clone()];
        assert_eq!(resolve_among("mnist", &dirs).expect("found"), empty);
        let err = resolve_among("fashion-mnist", std::slice::from_ref(&absent)).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }));
        let msg = err.to_string();
        assert!(msg.contains(&absent.display().to_string()), "{msg}");
        assert!(msg.contains(DATA_ENV), "{msg}");
        assert!(msg.contains("apt-get install dataset-fashion-mnist"), "{msg}");
    }

    #[test]
    fn search_dirs_end_with_system_folder() {
        let dirs = search_dirs("fashion-mnist");
        assert_eq!(
            dirs.last().expect("at least one"),
            Path::new("/usr/share/datasets/fashion-mnist")
        );
    }

    /// The real MNIST, when the shared datasets folder is present.
    #[test]
    fn loads_real_mnist_when_present() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets/mnist"));
        if !dir.is_dir() {
            eprintln!("skipped: no MNIST at {}", dir.display());
            return;
        }
        let d = load_idx_dir(dir, "mnist").expect("MNIST loads");
        assert_eq!(d.train.len(), 60_000);
        assert_eq!(d.test.len(), 10_000);
        assert_eq!((d.train.shape.rows, d.train.shape.cols), (28, 28));
        assert_eq!((d.test.shape.rows, d.test.shape.cols), (28, 28));
        assert!(d.train.labels.iter().chain(&d.test.labels).all(|&l| l < 10));
        assert!(d.train.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert_eq!(d.fingerprint.len(), 16);
    }
}
