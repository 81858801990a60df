//! The FAISS that setup.sh builds once per machine (shared libraries, linked by faiss-sys
//! without its `static` feature) links and answers exact searches correctly.
use faiss::{index_factory, Index, MetricType};

#[test]
fn flat_index_finds_exact_neighbours_with_squared_l2_distances() {
    let dim = 8;
    // Point i is i·e_(i mod 8): its distance to the query 0 is i², so neighbours come in order.
    let points: Vec<f32> = (0..100).flat_map(|i| (0..dim).map(move |d| if d == i % dim { i as f32 } else { 0.0 })).collect();
    let mut index = index_factory(dim as u32, "Flat", MetricType::L2).expect("FAISS index_factory works");
    index.add(&points).unwrap();
    assert_eq!(index.ntotal(), 100);
    let result = index.search(&vec![0.0; dim], 3).unwrap();
    let labels: Vec<u64> = result.labels.iter().map(|l| l.get().expect("three neighbours exist")).collect();
    assert_eq!(labels, vec![0, 1, 2]);
    assert_eq!(result.distances, vec![0.0, 1.0, 4.0], "FAISS reports squared L2 distances");
}

#[test]
fn bad_factory_string_is_an_error_not_a_crash() {
    let err = index_factory(8, "NoSuchIndex42", MetricType::L2).err().expect("an unknown index type is rejected");
    assert!(!err.to_string().is_empty());
}
