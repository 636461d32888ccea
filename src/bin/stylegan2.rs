//! The `stylegan2` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use stylegan2::{bench, Device};

#[derive(Parser)]
#[command(
    name = "stylegan2",
    version,
    about = "StyleGAN2 on hand-written CUDA kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark the modulated convolution paths at StyleGAN2 layer shapes.
    Bench {
        /// auto (the GPU if one is found, else the CPU), cpu, cuda or sim.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Timed iterations per row (the median is reported).
        #[arg(long, default_value_t = 5)]
        iters: usize,
        /// Channels ÷ 8: a fast smoke run.
        #[arg(long)]
        quick: bool,
        /// Where to write the results as JSON.
        #[arg(long, default_value = "bench.json")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stylegan2: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Bench {
            device,
            iters,
            quick,
            out,
        } => {
            if iters == 0 {
                return Err("--iters must be at least 1".into());
            }
            let device = Device::parse(&device)?;
            let cases = bench::default_cases(quick);
            println!("modulated convolution on {device}, median of {iters} runs");
            println!(
                "{:<18} {:<24} {:>10} {:>10} {:>12}",
                "layer", "path", "ms", "GFLOP/s", "vs unfused"
            );
            let rows = bench::run(device, &cases, iters, |r| {
                println!(
                    "{:<18} {:<24} {:>10.2} {:>10.1} {:>11.2}x",
                    r.case,
                    r.path,
                    r.median.as_secs_f64() * 1e3,
                    r.gflops,
                    r.speedup_vs_unfused
                );
            })?;
            let json = serde_json::to_string_pretty(&bench::to_json(device, iters, &rows))?;
            std::fs::write(&out, json)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}
