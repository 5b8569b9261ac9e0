//! The shape of one image: channels, rows and columns.
//!
//! Images are stored channels-last (HWC: for each pixel, row-major, its
//! channel values), the layout the engines' convolutions read directly. A
//! grayscale image is the same bytes either way; PyTorch's NCHW order is
//! converted only where weights or images cross to PyTorch.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Shape {
    /// A grayscale `rows x cols` image.
    pub const fn gray(rows: usize, cols: usize) -> Shape {
        Shape {
            channels: 1,
            rows,
            cols,
        }
    }

    /// MNIST's and Fashion-MNIST's 1x28x28.
    pub const MNIST: Shape = Shape::gray(28, 28);

    /// CIFAR-10's 3x32x32.
    pub const CIFAR: Shape = Shape {
        channels: 3,
        rows: 32,
        cols: 32,
    };

    /// Values per image (`channels * rows * cols`).
    pub fn dim(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// Pixels per channel (`rows * cols`).
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Index of channel `c` of the pixel at (`r`, `col`) in a stored image.
    pub fn at(&self, c: usize, r: usize, col: usize) -> usize {
        (r * self.cols + col) * self.channels + c
    }

    /// `image` (HWC) in PyTorch's CHW order.
    pub fn to_chw(&self, image: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; image.len()];
        for (p, values) in image.chunks(self.channels).enumerate() {
            for (c, &v) in values.iter().enumerate() {
                out[c * self.pixels() + p] = v;
            }
        }
        out
    }

    /// `image` in PyTorch's CHW order, stored HWC.
    pub fn from_chw(&self, image: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; image.len()];
        for (c, plane) in image.chunks(self.pixels()).enumerate() {
            for (p, &v) in plane.iter().enumerate() {
                out[p * self.channels + c] = v;
            }
        }
        out
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.rows, self.cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_and_hwc_round_trip_and_agree_on_gray() {
        let shape = Shape {
            channels: 3,
            rows: 2,
            cols: 2,
        };
        // HWC: pixel p, channel c = 10 * p + c.
        let hwc: Vec<f32> = (0..4).flat_map(|p| (0..3).map(move |c| (10 * p + c) as f32)).collect();
        let chw = shape.to_chw(&hwc);
        assert_eq!(&chw[..4], &[0.0, 10.0, 20.0, 30.0]);
        assert_eq!(&chw[4..8], &[1.0, 11.0, 21.0, 31.0]);
        assert_eq!(shape.from_chw(&chw), hwc);
        assert_eq!(hwc[shape.at(2, 1, 0)], 22.0);
        let gray = Shape::gray(2, 3);
        let image = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(gray.to_chw(&image), image);
        assert_eq!(gray.to_string(), "1x2x3");
    }
}
