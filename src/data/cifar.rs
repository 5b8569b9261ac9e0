//! CIFAR-10, binary version (Krizhevsky 2009): `data_batch_1.bin` to
//! `data_batch_5.bin` and `test_batch.bin`, each a run of 3,073-byte
//! records: one label byte (0-9), then 1,024 red, 1,024 green and 1,024 blue
//! bytes of a 32x32 image, row-major. Read as strictly as the IDX files:
//! a missing file, a size that is not a whole number of records, or a label
//! past 9 is an error naming the file.

use std::path::{Path, PathBuf};

use super::idx::{check_labels, DataError, DATA_ENV, SYSTEM_DATA_DIR};
use super::{Dataset, Shape, Split};

/// The folder name under `$REDQUEEN_DATA` (as the archive unpacks).
pub const FOLDER: &str = "cifar-10-batches-bin";
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";
pub const CLASSES: usize = 10;
/// Bytes per record: the label, then the image.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// The folder `cifar10` reads when `data.path` is not given:
/// `$REDQUEEN_DATA/cifar-10-batches-bin`, else under the system folder.
pub fn default_dir() -> PathBuf {
    match std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        Some(root) => PathBuf::from(root).join(FOLDER),
        None => Path::new(SYSTEM_DATA_DIR).join(FOLDER),
    }
}

/// Loads the six batch files of `dir`, checking all are present before
/// reading any.
pub fn load_cifar_dir(dir: &Path) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::CifarFolderMissing { dir: dir.to_path_buf() });
    }
    if !dir.join(TRAIN_FILES[0]).exists() && dir.join(FOLDER).is_dir() {
        return Err(DataError::CifarParentGiven { dir: dir.to_path_buf() });
    }
    let names: Vec<&str> = TRAIN_FILES.iter().copied().chain([TEST_FILE]).collect();
    for name in &names {
        if !dir.join(name).is_file() {
            return Err(DataError::FileMissing {
                dir: dir.to_path_buf(),
                what: "CIFAR-10 batch",
                tried: vec![name.to_string()],
            });
        }
    }
    let mut train = empty_split();
    for name in TRAIN_FILES {
        let batch = read_batch(&dir.join(name))?;
        train.images.extend(batch.images);
        train.labels.extend(batch.labels);
    }
    let test = read_batch(&dir.join(TEST_FILE))?;
    Ok(Dataset::new("cifar10", train, test, CLASSES))
}

fn empty_split() -> Split {
    Split {
        images: Vec::new(),
        labels: Vec::new(),
        shape: Shape::CIFAR,
    }
}

/// One batch file, its images converted from CHW bytes to HWC in [0,1].
pub fn read_batch(path: &Path) -> Result<Split, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_BATCH_BYTES {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_BATCH_BYTES,
        });
    }
    parse_batch(&std::fs::read(path).map_err(io)?, path)
}

/// A batch file larger than this is refused before reading: CIFAR-10's are
/// 30,730,000 bytes.
pub const MAX_BATCH_BYTES: u64 = 1 << 30;

pub fn parse_batch(bytes: &[u8], path: &Path) -> Result<Split, DataError> {
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            what: format!("a CIFAR-10 batch holds records of {RECORD} bytes"),
        });
    }
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::CifarTruncated {
            path: path.to_path_buf(),
            found: bytes.len(),
        });
    }
    let shape = Shape::CIFAR;
    let mut split = empty_split();
    split.images.reserve(bytes.len() / RECORD * shape.dim());
    for record in bytes.chunks_exact(RECORD) {
        split.labels.push(record[0]);
        let chw: Vec<f32> = record[1..].iter().map(|&b| b as f32 / 255.0).collect();
        split.images.extend(shape.from_chw(&chw));
    }
    check_labels(&split.labels, CLASSES, path)?;
    Ok(split)
}

/// A CIFAR-10 batch file's bytes for `images` (HWC in [0,1], as stored)
/// and `labels`: what the tests and fixtures write.
pub fn batch_bytes(images: &[f32], labels: &[u8]) -> Vec<u8> {
    let shape = Shape::CIFAR;
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (image, &label) in images.chunks(shape.dim()).zip(labels) {
        out.push(label);
        out.extend(
            shape
                .to_chw(image)
                .iter()
                .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_folder(dir: &Path, per_file: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for (f, name) in TRAIN_FILES.iter().chain([&TEST_FILE]).enumerate() {
            let labels: Vec<u8> = (0..per_file).map(|i| ((i + f) % 10) as u8).collect();
            let images: Vec<f32> = (0..per_file * 3072).map(|i| (i % 256) as f32 / 255.0).collect();
            std::fs::write(dir.join(name), batch_bytes(&images, &labels)).unwrap();
        }
    }

    #[test]
    fn reads_a_generated_folder_and_keeps_pixels_and_channels() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 3);
        let d = load_cifar_dir(dir.path()).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.classes), (15, 3, 10));
        assert_eq!(d.train.shape, Shape::CIFAR);
        assert_eq!(d.train.images.len(), 15 * 3072);
        assert_eq!(&d.train.labels[..4], &[0, 1, 2, 1]);
        // The file's byte i of an image is CHW; stored HWC, it comes back.
        let file = std::fs::read(dir.path().join(TEST_FILE)).unwrap();
        let shape = Shape::CIFAR;
        let (c, r, col) = (2, 5, 7);
        let byte = file[1 + c * 1024 + r * 32 + col];
        assert_eq!(d.test.image(0)[shape.at(c, r, col)], byte as f32 / 255.0);
    }

    #[test]
    fn names_the_file_that_is_missing_truncated_or_mislabelled() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), 2);
        let batch = dir.path().join("data_batch_3.bin");
        let bytes = std::fs::read(&batch).unwrap();

        std::fs::write(&batch, &bytes[..bytes.len() - 5]).unwrap();
        let err = load_cifar_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("data_batch_3.bin") && err.contains("truncated") && err.contains("cut after 3068 bytes"),
            "{err}"
        );

        let mut bad = bytes.clone();
        bad[RECORD] = 10;
        std::fs::write(&batch, &bad).unwrap();
        let err = load_cifar_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("data_batch_3.bin") && err.contains("label 1 is 10"),
            "{err}"
        );

        std::fs::write(&batch, b"").unwrap();
        let err = load_cifar_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("data_batch_3.bin") && err.contains("empty"), "{err}");

        std::fs::remove_file(&batch).unwrap();
        let err = load_cifar_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("data_batch_3.bin") && err.contains("missing"), "{err}");

        let err = load_cifar_dir(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");

        // The folder above the batches, as REDQUEEN_DATA would be.
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join(FOLDER)).unwrap();
        let err = load_cifar_dir(parent.path()).unwrap_err().to_string();
        assert!(err.contains("give that folder itself") && err.contains(FOLDER), "{err}");
    }
}
