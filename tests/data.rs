//! Datasets, the loader and the readers: batches in the same order whatever the worker count,
//! reproducible shuffles, samplers, splits, and malformed files refused with an `Err` (a
//! property test feeds random, mutated and truncated bytes to the IDX reader).

use proptest::prelude::*;
use tensile::data::array::{Array, Elements};
use tensile::data::idx;
use tensile::data::mnist::{Mnist, Split};
use tensile::data::{Concat, DataLoader, Dataset, DatasetExt, InMemory, Sampler, random_split};
use tensile::prelude::*;

type Sample = (Tensor<Rank1<3>, f32, Cpu>, i64);

fn samples(n: usize) -> InMemory<Sample> {
    let dev = Cpu::seeded(0);
    InMemory::new((0..n).map(|i| (dev.tensor([i as f32, 0.5, -(i as f32)]), i as i64)).collect())
}

/// Every label of an epoch, batch by batch.
fn labels<D: Dataset<Item = Sample>>(loader: &DataLoader<D>, epoch: usize) -> Vec<Vec<i64>> {
    loader.epoch(epoch).map(|b| b.unwrap().1.to_vec()).collect()
}

#[test]
fn the_order_does_not_depend_on_the_worker_count() {
    let base = labels(&DataLoader::new(samples(103), 8).shuffle(42), 3);
    for workers in [1, 2, 3, 7] {
        let loader = DataLoader::new(samples(103), 8).shuffle(42).workers(workers).prefetch(1);
        assert_eq!(labels(&loader, 3), base, "{workers} workers");
    }
    // features and labels stay together
    for batch in DataLoader::new(samples(20), 6).shuffle(1).workers(2).epoch(0) {
        let (x, y) = batch.unwrap();
        let x = x.to_vec();
        for (row, label) in y.to_vec().iter().enumerate() {
            assert_eq!(x[row * 3], *label as f32);
        }
    }
}

#[test]
fn shuffles_are_reproducible_and_differ_between_epochs() {
    let loader = DataLoader::new(samples(50), 10).shuffle(9);
    assert_eq!(labels(&loader, 0), labels(&loader, 0));
    assert_ne!(labels(&loader, 0), labels(&loader, 1));
    let mut all: Vec<i64> = labels(&loader, 1).concat();
    all.sort();
    assert_eq!(all, (0..50).collect::<Vec<_>>(), "each sample once per epoch");
    assert_eq!(labels(&DataLoader::new(samples(5), 2), 0), [vec![0, 1], vec![2, 3], vec![4]]);
}

#[test]
fn the_last_short_batch_is_kept_or_dropped() {
    let keep = DataLoader::new(samples(10), 4);
    let drop = DataLoader::new(samples(10), 4).drop_last(true);
    assert_eq!((keep.len(), drop.len()), (3, 2));
    assert_eq!(labels(&keep, 0).iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    assert_eq!(labels(&drop, 0).iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
}

#[test]
fn weighted_sampling_follows_the_weights() {
    let weights = vec![0.0, 1.0, 3.0];
    let sampler = Sampler::Weighted { weights, num_samples: 4000, seed: 3 };
    let drawn = sampler.indices(3, 0).unwrap();
    let count = |k| drawn.iter().filter(|&&i| i == k).count() as f64;
    assert_eq!(count(0), 0.0);
    assert!((count(2) / count(1) - 3.0).abs() < 0.3, "{} vs {}", count(2), count(1));
    assert!(Sampler::Weighted { weights: vec![1.0], num_samples: 1, seed: 0 }.indices(2, 0).is_err());
    assert!(Sampler::Weighted { weights: vec![0.0, -1.0], num_samples: 1, seed: 0 }.indices(2, 0).is_err());
}

#[test]
fn splits_subsets_and_concatenation() {
    let parts = random_split(samples(10), &[7, 3], 5).unwrap();
    let mut seen: Vec<i64> = parts.iter().flat_map(|p| (0..p.len()).map(|i| p.get(i).unwrap().1)).collect();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert!(random_split(samples(10), &[7, 4], 5).is_err());
    let both = Concat(samples(3), samples(2));
    assert_eq!(both.len(), 5);
    assert_eq!(both.get(4).unwrap().1, 1);
    assert!(matches!(both.get(5), Err(Error::IndexOutOfRange { .. })));
    let doubled = samples(4).map(|(x, y)| Ok((x.mul_scalar(2.0), y)));
    assert_eq!(doubled.get(3).unwrap().0.to_vec(), vec![6.0, 1.0, -6.0]);
}

#[test]
fn random_transforms_are_reproducible_per_sample_and_epoch() {
    use rand::RngExt;
    let noisy = || samples(8).random_map(11, |(x, y), rng| Ok((x.add_scalar(rng.random::<f64>()), y)));
    let a = DataLoader::new(noisy(), 4).workers(2);
    let b = DataLoader::new(noisy(), 4);
    let values = |l: &DataLoader<_>, e| {
        l.epoch(e).map(|b: Result<(Tensor<(usize, Const<3>), f32, Cpu>, _)>| b.unwrap().0.to_vec()).collect::<Vec<_>>()
    };
    assert_eq!(values(&a, 0), values(&b, 0), "the same noise whatever the workers");
    assert_ne!(values(&a, 0), values(&a, 1), "new noise each epoch");
}

#[test]
fn the_bundled_digits_load_as_mnist() {
    let dev = Cpu::seeded(0);
    let train = Mnist::<8, 8>::load(&dev, "examples/data/digits", Split::Train).unwrap();
    let test = Mnist::<8, 8>::load(&dev, "examples/data/digits", Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (1437, 360));
    let mut counts = [0usize; 10];
    for &l in train.labels() {
        counts[l as usize] += 1;
    }
    assert!(counts.iter().all(|&c| c > 100), "every digit is there: {counts:?}");
    assert!(matches!(train.get(1437), Err(Error::IndexOutOfRange { .. })));
    let missing = Mnist::<8, 8>::load(&dev, "examples/data/nothing-here", Split::Train).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
}

#[test]
fn idx_round_trips_every_element_type_and_names_what_is_wrong() {
    for data in [
        Elements::U8(vec![1, 2, 3, 4, 5, 6]),
        Elements::I8(vec![-1, 2, -3, 4, -5, 6]),
        Elements::I16(vec![-300, 2, 3, 4, 5, 30000]),
        Elements::I32(vec![-70000, 2, 3, 4, 5, 6]),
        Elements::F32(vec![0.5, -2.0, 3.0, 4.0, 5.0, 6.0]),
        Elements::F64(vec![0.25, -2.0, 3.0, 4.0, 5.0, 1e300]),
    ] {
        let a = Array { dims: vec![2, 3], data };
        assert_eq!(idx::parse(&idx::to_bytes(&a).unwrap()).unwrap(), a);
    }
    let good = idx::to_bytes(&Array { dims: vec![2, 2], data: Elements::U8(vec![1, 2, 3, 4]) }).unwrap();
    let err = |bytes: &[u8]| idx::parse(bytes).unwrap_err().to_string();
    assert!(err(&good[..good.len() - 1]).contains("need 4 bytes"), "{}", err(&good[..good.len() - 1]));
    let mut bad_magic = good.clone();
    bad_magic[0] = 7;
    assert!(err(&bad_magic).contains("magic"));
    let mut bad_type = good.clone();
    bad_type[2] = 0x42;
    assert!(err(&bad_type).contains("element type code 0x42"));
    assert!(err(&good[..6]).contains("header"));
    // a gzip stream cut short
    let gz = std::fs::read("examples/data/digits/t10k-labels-idx1-ubyte.gz").unwrap();
    assert!(matches!(idx::parse(&gz[..gz.len() / 2]), Err(Error::Malformed { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random bytes never panic the reader.
    #[test]
    fn random_bytes_are_refused_or_read(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = idx::parse(&bytes);
    }

    /// Mutated or truncated files never panic; what is read is consistent.
    #[test]
    fn mutated_files_never_panic(changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4), cut in 0usize..40) {
        let mut bytes = idx::to_bytes(&Array { dims: vec![3, 4], data: Elements::I16((0..12).collect()) }).unwrap();
        for (at, b) in changes {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(bytes.len().saturating_sub(cut));
        if let Ok(a) = idx::parse(&bytes) {
            prop_assert_eq!(a.len(), a.to_f32().len());
        }
    }
}

#[test]
fn npy_files_written_by_numpy_are_read() {
    use tensile::data::npy;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let f4 = npy::read(format!("{dir}/f4_c.npy")).unwrap();
    assert_eq!(f4.dims, vec![3, 4]);
    assert_eq!(f4.to_f32(), (0..12).map(|i| i as f32 / 4.0).collect::<Vec<_>>());
    let i2 = npy::read(format!("{dir}/i2_big_endian.npy")).unwrap();
    assert_eq!(i2.data, Elements::I16(vec![-300, 2, 3, 30000]));
    let fortran = npy::read(format!("{dir}/f8_fortran.npy")).unwrap();
    assert_eq!((fortran.dims.clone(), fortran.to_f64()), (vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    assert_eq!(npy::read(format!("{dir}/b1.npy")).unwrap().data, Elements::Bool(vec![true, false, true]));
    // what tensile writes reads back, every element type
    for data in [
        Elements::U8(vec![1, 2]),
        Elements::I8(vec![-1, 2]),
        Elements::I16(vec![-3, 4]),
        Elements::I32(vec![-5, 6]),
        Elements::I64(vec![-7, 8]),
        Elements::F32(vec![0.5, -1.5]),
        Elements::F64(vec![1e300, -2.0]),
        Elements::Bool(vec![false, true]),
    ] {
        let a = Array { dims: vec![2], data };
        assert_eq!(npy::parse(&npy::to_bytes(&a)).unwrap(), a);
    }
    let good = npy::to_bytes(&Array { dims: vec![2, 2], data: Elements::F32(vec![1.0; 4]) });
    assert!(npy::parse(&good[..good.len() - 2]).unwrap_err().to_string().contains("does not fit"));
    assert!(npy::parse(b"\x93NUMPX").is_err());
}

#[test]
fn csv_numbers_with_or_without_a_header() {
    use tensile::data::csv;
    let a = csv::parse("a, b, c\n1, 2, 3\n\n4, 5, 6.5\n", true).unwrap();
    assert_eq!((a.dims.clone(), a.to_f64()), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]));
    let ragged = csv::parse("1,2\n3\n", false).unwrap_err().to_string();
    assert!(ragged.contains("line 2: 1 fields, the first row has 2"), "{ragged}");
    assert!(csv::parse("a,b\n", false).unwrap_err().to_string().contains("line 1, column 1"));
    assert!(matches!(csv::read("tests/fixtures/none.csv", false), Err(Error::Io { .. })));
}

#[test]
fn npy_dtype_with_a_multibyte_first_character_is_an_error() {
    use tensile::data::npy;
    // found by the fuzz test below: `'<i4'` damaged into `'\u{80}4'` split a character in two
    let mut bytes = npy::to_bytes(&Array { dims: vec![2], data: Elements::I32(vec![1, 2]) });
    let at = bytes.windows(4).position(|w| w == b"'<i4").expect("descr") + 1;
    bytes[at..at + 2].copy_from_slice("\u{80}".as_bytes());
    let err = npy::parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("has no byte order"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random, mutated and truncated `.npy` and CSV input never panics.
    #[test]
    fn npy_and_csv_readers_never_panic(changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4), cut in 0usize..30, text in ".{0,80}") {
        use tensile::data::{csv, npy};
        let mut bytes = npy::to_bytes(&Array { dims: vec![3, 2], data: Elements::I32((0..6).collect()) });
        for (at, b) in changes {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(bytes.len().saturating_sub(cut));
        if let Ok(a) = npy::parse(&bytes) {
            prop_assert_eq!(a.len(), a.dims.iter().product::<usize>());
        }
        if let Ok(a) = csv::parse(&text, false) {
            prop_assert_eq!(a.len(), a.dims[0] * a.dims[1]);
        }
    }
}

#[test]
fn static_batches_have_const_batch_dims_and_drop_the_short_one() {
    let loader = DataLoader::new(samples(10), 4).shuffle(2).workers(2);
    let batches: Vec<(Tensor<Rank2<4, 3>, f32, Cpu>, Tensor<Rank1<4>, i64, Cpu>)> =
        loader.epoch_static::<4>(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 2);
    let dynamic: Vec<Vec<i64>> = labels(&loader, 0);
    assert_eq!(batches[1].1.to_vec(), dynamic[1], "the same order as the run-time batches");
    let mut wrong = DataLoader::new(samples(10), 5).epoch_static::<4>(0);
    assert!(matches!(wrong.next(), Some(Err(Error::InvalidSize { .. }))));
    assert!(wrong.next().is_none());
}
