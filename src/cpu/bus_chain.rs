//! The bus's `process` chain on the CPU (design/mastering.md): run on the bus, and shared out among
//! the stem contributions when stems are delivered, so that they still sum to the master.
use rayon::prelude::*;

use crate::cpu::delay_line::DelayLine;
use crate::cpu::{self, Stage};
use crate::model::{Process, Share};

/// How one stage reaches one stem contribution (`Process::share`).
enum PartPath {
    /// A linear stage: the contribution goes through its own copy of it.
    Copy(Box<dyn Stage>),
    /// A gain envelope (the bus stage's gains follow) or a residual stage (nothing follows): the
    /// contribution is delayed as the stage delays the bus, one line per channel.
    Delay(Vec<DelayLine>),
}

struct BusStage {
    stage: Box<dyn Stage>,
    share: Share,
    /// One per stem contribution (none without stem outputs).
    parts: Vec<PartPath>,
}

/// The chain of a pass: `parts` stem contributions of `channels` channels follow it.
pub struct BusChain {
    stages: Vec<BusStage>,
}

impl BusChain {
    pub fn new(process: &[Process], channels: usize, parts: usize, block: usize, sample_rate: u32) -> BusChain {
        let stages = process
            .iter()
            .map(|p| {
                let stage = cpu::stage(p, channels, block, sample_rate);
                let share = p.share();
                let parts = (0..parts)
                    .map(|_| match share {
                        Share::Linear => PartPath::Copy(cpu::stage(p, channels, block, sample_rate)),
                        Share::Envelope | Share::Residual => {
                            PartPath::Delay((0..channels).map(|_| DelayLine::new(stage.latency(), block)).collect())
                        }
                    })
                    .collect();
                BusStage { stage, share, parts }
            })
            .collect();
        BusChain { stages }
    }

    /// The bus stage `j`'s gain reduction (`Stage::reduction`).
    pub fn reduction(&self, j: usize, frames: u64) -> Option<crate::engine::StageReduction> {
        self.stages.get(j).and_then(|s| s.stage.reduction(frames))
    }

    /// Every stage's `Stage::state_bytes`, the bus's then its stem copies', in order (a delay line
    /// has finite memory: nothing); None when a stage has none.
    pub fn state_bytes(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for s in &self.stages {
            out.extend(s.stage.state_bytes()?);
            for part in &s.parts {
                if let PartPath::Copy(copy) = part {
                    out.extend(copy.state_bytes()?);
                }
            }
        }
        Some(out)
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// One block: every stage in order on `bus`, and on each of `parts` (a stem's contribution,
    /// `[channel][frame]`) what `Process::share` says, parts in parallel.
    pub fn process(&mut self, bus: &mut [Vec<f32>], parts: &mut [Vec<Vec<f32>>]) {
        for s in &mut self.stages {
            s.stage.process(bus);
            let (stage, share) = (&*s.stage, s.share);
            s.parts.par_iter_mut().zip(parts.par_iter_mut()).for_each(|(path, part)| match path {
                PartPath::Copy(copy) => copy.process(part),
                PartPath::Delay(lines) => {
                    lines.iter_mut().zip(part.iter_mut()).for_each(|(l, x)| l.process(x));
                    if share == Share::Envelope {
                        stage.apply_envelope(part);
                    }
                }
            });
        }
    }
}
