//! What the two digits examples share: the bundled data, a training loop with a progress bar,
//! and test accuracy.

use std::time::Instant;
use tensile::data::mnist::{Mnist, Split};
use tensile::data::{DataLoader, Dataset, DatasetExt, Progress, transforms};
use tensile::nn::{self, Params, SaveLoad};
use tensile::optim::{Adam, Optimizer};
use tensile::prelude::*;

/// A batch of 8 x 8 greyscale digits.
pub type Images<T = NoTape> = Tensor<(usize, Const<1>, Const<8>, Const<8>), f32, Cpu, T>;
/// Ten class scores per image.
pub type Logits<T = NoTape> = Tensor<(usize, Const<10>), f32, Cpu, T>;
type Sample = (Tensor<Rank3<1, 8, 8>, f32, Cpu>, i64);

/// The bundled digits folder (or `$TENSILE_DIGITS`, any MNIST-format folder of 8 x 8 images).
fn folder() -> String {
    std::env::var("TENSILE_DIGITS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits").into())
}

/// A split with pixels scaled from 0..=16 to [0, 1].
fn split(dev: &Cpu, which: Split) -> Result<impl Dataset<Item = Sample>> {
    let raw = Mnist::<8, 8>::load(dev, folder(), which)?;
    Ok(raw.map(|(image, label)| Ok((transforms::to_float(&image, 1.0 / 16.0), label))))
}

/// Trains `model` with Adam for `epochs`, printing the train loss and test accuracy of each
/// epoch; returns (final accuracy, seconds until the accuracy first reached 97 %).
pub fn train<M>(name: &str, model: &mut M, epochs: usize, lr: f64) -> Result<(f64, Option<f64>)>
where
    M: Params<Cpu>
        + ModuleMut<Images<OwnedTape<Cpu>>, Output = Logits<OwnedTape<Cpu>>>
        + Module<Images, Output = Logits>,
{
    let dev = Cpu::seeded(0);
    let train = DataLoader::new(split(&dev, Split::Train)?, 32).shuffle(0).workers(1).prefetch(4);
    let test = DataLoader::new(split(&dev, Split::Test)?, 360);
    println!(
        "{name}: {} parameters; {} training images, {} test images",
        nn::num_params(model),
        train.dataset().len(),
        test.dataset().len()
    );
    let mut opt = Optimizer::new(Adam::new(lr));
    let start = Instant::now();
    let (mut accuracy, mut reached) = (0.0, None);
    for epoch in 0..epochs {
        let mut bar = Progress::new(format!("epoch {:2}", epoch + 1), train.len());
        let mut total = 0.0;
        for batch in train.epoch(epoch) {
            let (x, y) = batch?;
            let loss =
                model.try_forward_mut(x.trace(nn::alloc_grads(model)))?.try_cross_entropy(&y)?.ensure_finite()?;
            total += loss.to_array() as f64;
            let grads = loss.backward();
            opt.step(model, &grads)?;
            bar.inc(1);
        }
        accuracy = evaluate(model, &test)?;
        let loss = total / train.len() as f64;
        bar.finish(&format!("loss {loss:.4}"));
        let secs = start.elapsed().as_secs_f64();
        if accuracy >= 0.97 && reached.is_none() {
            reached = Some(secs);
        }
        println!("epoch {:2}: train loss {loss:.4}, test accuracy {:.2} % ({secs:.1} s)", epoch + 1, accuracy * 100.0);
    }
    match reached {
        Some(t) => println!("{name}: 97 % test accuracy reached after {t:.1} s of training"),
        None => println!("{name}: 97 % test accuracy not reached (best last: {:.2} %)", accuracy * 100.0),
    }
    Ok((accuracy, reached))
}

/// The share of test images classified right.
pub fn evaluate<M, D>(model: &M, test: &DataLoader<D>) -> Result<f64>
where
    M: Module<Images, Output = Logits>,
    D: Dataset<Item = Sample>,
{
    let (mut right, mut seen) = (0, 0);
    for batch in test.epoch(0) {
        let (x, y) = batch?;
        let predicted = model.try_forward(x)?.argmax(Axis::<1>);
        right += predicted.to_vec().iter().zip(y.to_vec()).filter(|(p, y)| **p == *y).count();
        seen += y.numel();
    }
    Ok(right as f64 / seen.max(1) as f64)
}

/// Saves the model, loads it into `fresh`, and checks that the accuracy is the same.
#[allow(dead_code)] // the export example traces instead of saving safetensors
pub fn save_and_reload<M>(model: &M, fresh: &mut M, accuracy: f64, file: &str) -> Result<()>
where
    M: Params<Cpu> + Module<Images, Output = Logits>,
{
    let path = std::env::temp_dir().join(file);
    model.save(&path)?;
    fresh.load(&path)?;
    let dev = Cpu::seeded(0);
    let again = evaluate(fresh, &DataLoader::new(split(&dev, Split::Test)?, 360))?;
    println!("saved to {}, reloaded: test accuracy {:.2} %", path.display(), again * 100.0);
    assert_eq!(again, accuracy, "the reloaded model classifies differently");
    Ok(())
}
