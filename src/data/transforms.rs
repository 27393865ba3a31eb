//! Sample transforms, as torchvision's: u8 images to float tensors, normalisation, random crops
//! with padding and random horizontal flips (for [`RandomMap`](super::RandomMap), which seeds
//! the generator per sample and epoch).

use crate::device::Device;
use crate::dtypes::{Dtype, Float};
use crate::shapes::{Const, Rank3};
use crate::tensor::{Tensor, TensorFactory};
use rand::RngExt;
use rand::rngs::StdRng;

/// A u8 image as floats times `scale` (torchvision's `ToTensor` is `scale = 1/255`).
///
/// ```
/// use tensile::prelude::*;
/// let img = Cpu::seeded(0).tensor([[[0u8, 16]]]);
/// assert_eq!(tensile::data::transforms::to_float::<_, f32, _>(&img, 1.0 / 16.0).to_vec(), vec![0.0, 1.0]);
/// ```
pub fn to_float<S: crate::shapes::Shape, E: Float, D: Device>(image: &Tensor<S, u8, D>, scale: f64) -> Tensor<S, E, D> {
    image.cast::<E>().mul_scalar(scale)
}

/// `(x - mean[c]) / std[c]` per channel of a `(C, H, W)` image (`Normalize`).
///
/// ```
/// use tensile::prelude::*;
/// let img = Cpu::seeded(0).tensor([[[1.0f32, 3.0]]]);
/// let n = tensile::data::transforms::normalize(img, [2.0], [0.5]);
/// assert_eq!(n.to_vec(), vec![-2.0, 2.0]);
/// ```
pub fn normalize<const C: usize, const H: usize, const W: usize, E: Float, D: Device>(
    image: Tensor<Rank3<C, H, W>, E, D>,
    mean: [f64; C],
    std: [f64; C],
) -> Tensor<Rank3<C, H, W>, E, D> {
    map_pixels(&image, |c, _, _, v| E::cast_f64((v.as_f64() - mean[c]) / std[c]))
}

/// A random `H x W` window of the image padded by `pad` zeros on every side (`RandomCrop` with
/// `padding`).
pub fn random_crop<const C: usize, const H: usize, const W: usize, E: Float, D: Device>(
    image: Tensor<Rank3<C, H, W>, E, D>,
    pad: usize,
    rng: &mut StdRng,
) -> Tensor<Rank3<C, H, W>, E, D> {
    let (dy, dx) = (rng.random_range(0..=2 * pad), rng.random_range(0..=2 * pad));
    let src = image.to_vec();
    map_pixels(&image, |c, y, x, _| {
        let (sy, sx) = ((y + dy).wrapping_sub(pad), (x + dx).wrapping_sub(pad));
        if sy < H && sx < W { src[(c * H + sy) * W + sx] } else { E::zero() }
    })
}

/// The image mirrored left to right with probability `p` (`RandomHorizontalFlip`).
pub fn random_horizontal_flip<const C: usize, const H: usize, const W: usize, E: Dtype, D: Device>(
    image: Tensor<Rank3<C, H, W>, E, D>,
    p: f64,
    rng: &mut StdRng,
) -> Tensor<Rank3<C, H, W>, E, D> {
    if rng.random::<f64>() >= p {
        return image;
    }
    let src = image.to_vec();
    map_pixels(&image, |c, y, x, _| src[(c * H + y) * W + (W - 1 - x)])
}

/// A new image whose pixel `(c, y, x)` is `f(c, y, x, old value)`.
fn map_pixels<const C: usize, const H: usize, const W: usize, E: Dtype, D: Device>(
    image: &Tensor<Rank3<C, H, W>, E, D>,
    f: impl Fn(usize, usize, usize, E) -> E,
) -> Tensor<Rank3<C, H, W>, E, D> {
    let src = image.to_vec();
    let mut out = Vec::with_capacity(src.len());
    for c in 0..C {
        for y in 0..H {
            for x in 0..W {
                out.push(f(c, y, x, src[(c * H + y) * W + x]));
            }
        }
    }
    image.device().from_vec(out, (Const, Const, Const))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;
    use rand::SeedableRng;

    #[test]
    fn crops_shift_within_the_padding_and_flips_mirror() {
        let dev = Cpu::seeded(0);
        let img: Tensor<Rank3<1, 2, 3>, f32, Cpu> = dev.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]);
        let flipped = random_horizontal_flip(img.clone(), 1.0, &mut StdRng::seed_from_u64(0));
        assert_eq!(flipped.to_vec(), vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        assert_eq!(random_horizontal_flip(img.clone(), 0.0, &mut StdRng::seed_from_u64(0)).to_vec(), img.to_vec());
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            let crop = random_crop(img.clone(), 1, &mut rng).to_vec();
            // every kept pixel is an original one, the rest are the zero padding
            assert!(crop.iter().all(|v| *v == 0.0 || img.to_vec().contains(v)));
            assert!(crop.iter().filter(|v| **v != 0.0).count() >= 2);
        }
        assert_eq!(random_crop(img.clone(), 0, &mut rng).to_vec(), img.to_vec());
    }
}
