// The small interface through which LossWarmupWrapper schedules a ranking
// loss: its sigmoid temperature and its memory queue. The library's ranking
// losses implement it; a user's own loss module can too.
#pragma once

namespace proxyloss {

class RankingLossControl {
 public:
  virtual ~RankingLossControl() = default;
  virtual double temperature() const = 0;
  // Throws c10::Error for a temperature that is not finite and > 0.
  virtual void set_temperature(double temperature) = 0;
  // Empties the memory queue (no-op for a loss without one).
  virtual void reset_queue() = 0;
};

} // namespace proxyloss
