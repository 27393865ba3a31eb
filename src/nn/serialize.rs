//! Saving and loading a model's tensors as [safetensors], named as PyTorch's `state_dict`
//! names them, so that PyTorch's `model.load_state_dict(safetensors.torch.load_file(path))`
//! reads what tensile writes, and tensile reads what PyTorch writes.
//!
//! Loading is strict, as `load_state_dict(strict=True)`: every tensor of the model must be in the
//! file with its shape and dtype, and the file may hold nothing else. The first mismatch is an
//! `Err` naming the key, and on any error the model is left as it was.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use super::{Params, TensorKind, Visitor, VisitorMut};
use crate::compat::HashMap;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::{Dtype, Float};
use crate::error::{Error, Result};
use crate::shapes::Shape;
use crate::tensor::{Tensor, TensorFactory};
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
#[cfg(feature = "std")]
use std::path::Path;

/// Save and load for every module: `model.save("cnn.safetensors")?`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{BatchNorm1d, Linear, ReLU, SaveLoad};
///
/// type Mlp = (Linear<4, 8>, BatchNorm1d<8>, ReLU, Linear<8, 2>);
/// let dev = Cpu::seeded(0);
/// let trained = Mlp::build(&dev);
/// let bytes = trained.to_safetensors().unwrap();
///
/// let mut fresh = Mlp::build(&Cpu::seeded(1));
/// fresh.load_safetensors(&bytes).unwrap();
/// assert_eq!(fresh.0.weight.to_vec(), trained.0.weight.to_vec());
///
/// // a file of another model is refused, naming the first key that does not fit
/// let mut other = <(Linear<4, 8>, BatchNorm1d<8>, ReLU, Linear<8, 3>)>::build(&dev);
/// let err = other.load_safetensors(&bytes).unwrap_err();
/// assert_eq!(err.to_string(), "`3.weight`: the model's shape is [3, 8], the saved one [2, 8]");
/// ```
pub trait SaveLoad<D: Device>: Params<D> {
    /// The model's tensors as the bytes of a safetensors file (metadata `format: pt`, as
    /// PyTorch's `safetensors.torch.save_file` writes).
    fn to_safetensors(&self) -> Result<Vec<u8>> {
        let mut collect = Collect(Vec::new(), None);
        self.visit_params("", &mut collect);
        if let Some(e) = collect.1 {
            return Err(e);
        }
        serialize_entries(&collect.0, None)
    }

    /// Writes the model to `path` as safetensors, through a temporary file renamed over `path`,
    /// so that a crash leaves the old file whole.
    #[cfg(feature = "std")]
    fn save<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        crate::io::write_atomically(path.as_ref(), &self.to_safetensors()?)
    }

    /// Sets every tensor of the model from safetensors bytes; see the module docs for the checks.
    /// On `Err` the model is unchanged.
    fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| malformed(&e))?;
        let entries =
            file.iter().map(|(name, view)| (name.to_string(), (view.shape().to_vec(), Some(view.dtype())))).collect();
        check_state(self, &entries)?;
        self.visit_params_mut("", &mut Assign(&file));
        Ok(())
    }

    /// Loads the model from a safetensors file (PyTorch's or tensile's); on `Err` the model is
    /// unchanged.
    #[cfg(feature = "std")]
    fn load<P: AsRef<Path>>(&mut self, path: P) -> Result<()> {
        self.load_safetensors(&crate::io::read(path.as_ref())?)
    }
}

impl<D: Device, M: Params<D>> SaveLoad<D> for M {}

pub(crate) fn malformed(e: &safetensors::SafeTensorError) -> Error {
    Error::Malformed { format: "safetensors", reason: e.to_string() }
}

/// The safetensors code of a dtype, by PyTorch's name of it.
pub(crate) fn st_dtype<E: Dtype>() -> Option<StDtype> {
    Some(match E::NAME {
        "float32" => StDtype::F32,
        "float64" => StDtype::F64,
        "float16" => StDtype::F16,
        "bfloat16" => StDtype::BF16,
        "int32" => StDtype::I32,
        "int64" => StDtype::I64,
        "uint8" => StDtype::U8,
        "bool" => StDtype::BOOL,
        _ => return None,
    })
}

fn no_code<E: Dtype>(name: &str) -> Error {
    Error::Malformed { format: "safetensors", reason: format!("`{name}`: dtype {} has no safetensors code", E::NAME) }
}

/// Values as little-endian bytes.
pub(crate) fn le_bytes<E: Dtype>(values: &[E]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * E::BYTES);
    for &v in values {
        v.put_le(&mut bytes);
    }
    bytes
}

/// Values from little-endian bytes.
pub(crate) fn from_le_bytes<E: Dtype>(bytes: &[u8]) -> Vec<E> {
    bytes.chunks_exact(E::BYTES).map(E::from_le).collect()
}

/// Named tensors as safetensors bytes, with one metadata entry (`format: pt` unless another is
/// given): one, because the header's metadata is a map whose order is not fixed, and the same
/// tensors must always give the same bytes.
pub(crate) fn serialize_entries(entries: &[Entry], metadata: Option<(&str, &str)>) -> Result<Vec<u8>> {
    let views = entries
        .iter()
        .map(|(name, dtype, dims, bytes)| {
            let view = TensorView::new(*dtype, dims.clone(), bytes).map_err(|e| malformed(&e))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let (key, value) = metadata.unwrap_or(("format", "pt"));
    let metadata = [(key.to_string(), value.to_string())].into_iter().collect();
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| malformed(&e))
}

/// Every tensor as (name, dtype, dims, little-endian bytes).
pub(crate) type Entry = (String, StDtype, Vec<usize>, Vec<u8>);
struct Collect(Vec<Entry>, Option<Error>);

impl Collect {
    fn push<S: Shape, E: Dtype, D: Device>(&mut self, name: &str, t: &Tensor<S, E, D>) {
        let Some(dtype) = st_dtype::<E>() else {
            self.1.get_or_insert(no_code::<E>(name));
            return;
        };
        self.0.push((name.to_string(), dtype, t.dims().to_vec(), le_bytes(&t.to_vec())));
    }
}

impl<D: Device> Visitor<D> for Collect {
    fn visit<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &Tensor<S, E, D>) {
        self.push(name, t);
    }
    fn visit_non_float<S: Shape, E: Dtype>(&mut self, name: &str, t: &Tensor<S, E, D>) {
        self.push(name, t);
    }
}

/// A saved state's entries: each name's dims, and its dtype where it must match the model's.
type Entries = HashMap<String, (Vec<usize>, Option<StDtype>)>;

/// Checks the model's tensors against a saved state as `load_state_dict(strict=True)` does:
/// the first missing key, wrong dtype or shape in visiting order, then the first unexpected
/// key in name order.
fn check_state<D: Device, M: Params<D> + ?Sized>(model: &M, entries: &Entries) -> Result<()> {
    let mut check = Check { entries, seen: Vec::new(), error: None };
    model.visit_params("", &mut check);
    if let Some(e) = check.error {
        return Err(e);
    }
    let mut unexpected: Vec<&String> = entries.keys().filter(|n| !check.seen.contains(n)).collect();
    unexpected.sort_unstable();
    match unexpected.first() {
        Some(key) => Err(Error::UnexpectedKey { key: key.to_string() }),
        None => Ok(()),
    }
}

/// Checks every tensor of the model against a saved state, keeping the first mismatch.
struct Check<'a> {
    entries: &'a Entries,
    seen: Vec<String>,
    error: Option<Error>,
}

impl Check<'_> {
    fn check<S: Shape, E: Dtype, D: Device>(&mut self, name: &str, t: &Tensor<S, E, D>) {
        self.seen.push(name.to_string());
        if self.error.is_some() {
            return;
        }
        let Some((dims, dtype)) = self.entries.get(name) else {
            self.error = Some(Error::MissingKey { key: name.to_string() });
            return;
        };
        if let Some(dtype) = dtype.filter(|&d| st_dtype::<E>() != Some(d)) {
            self.error = Some(Error::WrongDtype { key: name.to_string(), expected: E::NAME, found: dtype.to_string() });
        } else if dims.as_slice() != t.dims().as_slice() {
            self.error =
                Some(Error::WrongShape { key: name.to_string(), expected: t.dims().to_vec(), found: dims.clone() });
        }
    }
}

impl<D: Device> Visitor<D> for Check<'_> {
    fn visit<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &Tensor<S, E, D>) {
        self.check(name, t);
    }
    fn visit_non_float<S: Shape, E: Dtype>(&mut self, name: &str, t: &Tensor<S, E, D>) {
        self.check(name, t);
    }
}

/// Copies every tensor of `src` into `dst` by name, converting dtypes: how a model moves to
/// another dtype (build the same architecture in the new dtype, then copy), or how weights move
/// between two module types that name them alike. Names and shapes are checked as
/// [`SaveLoad::load`] checks them (dtypes may differ); on `Err`, `dst` is unchanged.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Linear, ReLU};
/// let dev = Cpu::seeded(0);
/// let m32 = <(Linear<2, 3>, ReLU, Linear<3, 1>)>::build(&dev);
/// let mut m64 = <(Linear<2, 3, f64>, ReLU, Linear<3, 1, f64>)>::build(&dev);
/// nn::copy_params(&m32, &mut m64).unwrap();
/// assert_eq!(m64.0.weight.to_vec()[0], m32.0.weight.to_vec()[0] as f64);
/// ```
pub fn copy_params<D: Device, M1: Params<D>, M2: Params<D>>(src: &M1, dst: &mut M2) -> Result<()> {
    struct Values(HashMap<String, (Vec<usize>, Vec<f64>)>);
    impl Values {
        fn add<S: Shape, E: Dtype, D: Device>(&mut self, name: &str, t: &Tensor<S, E, D>) {
            let values = t.to_vec().into_iter().map(Dtype::as_f64).collect();
            self.0.insert(name.to_string(), (t.dims().to_vec(), values));
        }
        fn set<S: Shape, E: Dtype, D: Device>(&self, name: &str, t: &mut Tensor<S, E, D>) {
            let (_, values) = &self.0[name];
            *t = t.device().from_vec(values.iter().map(|&v| E::cast_f64(v)).collect(), *t.shape());
        }
    }
    impl<D: Device> Visitor<D> for Values {
        fn visit<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &Tensor<S, E, D>) {
            self.add(name, t);
        }
        fn visit_non_float<S: Shape, E: Dtype>(&mut self, name: &str, t: &Tensor<S, E, D>) {
            self.add(name, t);
        }
    }
    impl<D: Device> VisitorMut<D> for Values {
        fn visit_mut<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &mut Tensor<S, E, D>) {
            self.set(name, t);
        }
        fn visit_non_float_mut<S: Shape, E: Dtype>(&mut self, name: &str, t: &mut Tensor<S, E, D>) {
            self.set(name, t);
        }
    }
    let mut values = Values(HashMap::new());
    src.visit_params("", &mut values);
    let entries = values.0.iter().map(|(name, (dims, _))| (name.clone(), (dims.clone(), None))).collect();
    check_state(dst, &entries)?;
    dst.visit_params_mut("", &mut values);
    Ok(())
}

/// Sets every tensor from the file (after [`check_state`] found nothing wrong).
struct Assign<'a, 'data>(&'a SafeTensors<'data>);

impl Assign<'_, '_> {
    fn assign<S: Shape, E: Dtype, D: Device>(&mut self, name: &str, t: &mut Tensor<S, E, D>) {
        let view = self.0.tensor(name).expect("checked: the file has every key");
        *t = t.device().from_vec(from_le_bytes(view.data()), *t.shape());
    }
}

impl<D: Device> VisitorMut<D> for Assign<'_, '_> {
    fn visit_mut<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &mut Tensor<S, E, D>) {
        self.assign(name, t);
    }
    fn visit_non_float_mut<S: Shape, E: Dtype>(&mut self, name: &str, t: &mut Tensor<S, E, D>) {
        self.assign(name, t);
    }
}
