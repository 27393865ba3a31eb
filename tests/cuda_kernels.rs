//! Checks of the CUDA kernels that need no GPU: every file in `kernels/` compiles with NVRTC
//! to PTX for sm_80 and sm_90, and `ptxas` assembles the PTX with no register spills.
//!
//! NVRTC and ptxas come from the `nvidia-cuda-nvrtc-cu12` and `nvidia-cuda-nvcc-cu12` wheels
//! (`.ci/run` installs them, puts NVRTC on `LD_LIBRARY_PATH` and ptxas in `TENSILE_PTXAS`, and
//! sets `TENSILE_REQUIRE_NVRTC=1` so that a missing tool fails instead of skipping).
#![cfg(feature = "cuda")]

use std::path::PathBuf;
use std::process::Command;
use tensile::device::cuda::{KernelFile, compile};

const ARCHS: &[&str] = &["sm_80", "sm_90"];

fn required() -> bool {
    std::env::var("TENSILE_REQUIRE_NVRTC").is_ok_and(|v| v == "1")
}

fn ptxas() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TENSILE_PTXAS") {
        return Some(PathBuf::from(p));
    }
    Command::new("ptxas").arg("--version").output().ok().filter(|o| o.status.success()).map(|_| PathBuf::from("ptxas"))
}

/// Per kernel in ptxas' `-v` report: (name, registers, spill store bytes, spill load bytes).
/// The report gives, per kernel: "Compiling entry function 'NAME'", then a line with
/// "N bytes spill stores, M bytes spill loads", then "Used R registers".
fn kernel_reports(report: &str) -> Vec<(String, u32, u32, u32)> {
    let mut out = Vec::new();
    let (mut name, mut spill) = (None::<String>, (0, 0));
    let number_before = |line: &str, key: &str| -> u32 {
        line.split(',')
            .find(|p| p.contains(key))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    for line in report.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            name = rest.split('\'').next().map(String::from);
            spill = (0, 0);
        } else if line.contains("spill stores") {
            spill = (number_before(line, "spill stores"), number_before(line, "spill loads"));
        } else if let Some(r) = line.split("Used ").nth(1) {
            let regs = r.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            if let Some(n) = name.take() {
                out.push((n, regs, spill.0, spill.1));
            }
        }
    }
    out
}

#[test]
fn the_ptxas_report_parser_reads_spills_and_registers() {
    let report = "ptxas info    : Compiling entry function 'k_f32' for 'sm_90'\n\
ptxas info    : Function properties for k_f32\n\
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
ptxas info    : Used 40 registers, 456 bytes cmem[0]\n";
    assert_eq!(kernel_reports(report), vec![("k_f32".to_string(), 40, 4, 12)]);
}

#[test]
fn every_kernel_file_compiles_for_sm80_and_sm90_and_assembles_without_spills() {
    let dir = std::env::temp_dir().join(format!("tensile-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ptxas = ptxas();
    let mut compiled = 0;
    for &file in KernelFile::ALL {
        for &arch in ARCHS {
            let ptx = match compile(file, arch) {
                Ok(p) => p.to_src(),
                Err(e) if !required() => {
                    eprintln!(
                        "SKIPPED: the CUDA kernel compile check ({e}); set TENSILE_REQUIRE_NVRTC=1 to fail instead"
                    );
                    return;
                }
                Err(e) => panic!("{e}"),
            };
            assert!(ptx.contains(".entry"), "{file:?} for {arch}: no kernels in the PTX");
            compiled += 1;
            let Some(ptxas) = &ptxas else {
                assert!(!required(), "ptxas was not found (set TENSILE_PTXAS)");
                eprintln!("SKIPPED: ptxas (not found): {file:?} compiled but was not assembled");
                continue;
            };
            let path = dir.join(format!("{}-{arch}.ptx", file.file_name()));
            std::fs::write(&path, &ptx).unwrap();
            let out = Command::new(ptxas)
                .args([&format!("-arch={arch}"), "-v", "-o"])
                .arg(dir.join("out.cubin"))
                .arg(&path)
                .output()
                .expect("ptxas runs");
            let report = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "ptxas failed on {file:?} for {arch}:\n{report}");
            let kernels = kernel_reports(&report);
            assert!(!kernels.is_empty(), "no kernel reports from ptxas for {file:?}:\n{report}");
            let spilled: Vec<_> = kernels.iter().filter(|k| k.2 > 0 || k.3 > 0).collect();
            assert!(spilled.is_empty(), "{file:?} for {arch}: kernels spill registers: {spilled:?}");
            let max_regs = kernels.iter().map(|k| k.1).max().unwrap_or(0);
            eprintln!(
                "{} for {arch}: {} kernels, no spills, at most {max_regs} registers",
                file.file_name(),
                kernels.len()
            );
        }
    }
    assert_eq!(compiled, KernelFile::ALL.len() * ARCHS.len());
}
