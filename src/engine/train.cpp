#include "stylize/train.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cmath>
#include <random>

#include "stylize/error.hpp"

namespace stylize {

TrainRequest train_defaults() {
  TrainRequest r;
  r.loss.content_layers = {"relu3_2"};
  r.loss.style_layers = {"relu1_1", "relu2_1", "relu3_1"};
  r.loss.content_weight = 5.0;
  r.loss.style_weight = 6.0;
  r.loss.tv_weight = 1e-3;
  return r;
}

namespace {

void check_range(bool ok, const std::string& name, const std::string& range, const std::string& got) {
  if (!ok) throw UsageError(field(name) + " must be " + range + ", got " + got);
}

std::string num(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}


}  // namespace

void validate(const TrainRequest& r) {
  check_range(r.crop_size >= 32 && r.crop_size <= 2048 && r.crop_size % 4 == 0, "crop_size",
              "a multiple of 4 in 32..2048", std::to_string(r.crop_size));
  check_range(r.batch_size >= 1 && r.batch_size <= 64, "batch_size", "in 1..64", std::to_string(r.batch_size));
  check_range(r.steps >= 1 && r.steps <= 10'000'000, "steps", "in 1..10000000", std::to_string(r.steps));
  check_range(r.learning_rate > 0 && r.learning_rate <= 1, "learning_rate", "in (0, 1]", num(r.learning_rate));
  check_range(r.style_size >= 16 && r.style_size <= 8192, "style_size", "in 16..8192", std::to_string(r.style_size));
  // inf passes ">= 0" and ends the first step as a divergence: refused here, by name.
  auto weight = [](double w) { return std::isfinite(w) && w >= 0; };
  check_range(weight(r.loss.content_weight), "content_weight", "a finite number >= 0", num(r.loss.content_weight));
  check_range(weight(r.loss.style_weight), "style_weight", "a finite number >= 0", num(r.loss.style_weight));
  check_range(weight(r.loss.tv_weight), "tv_weight", "a finite number >= 0", num(r.loss.tv_weight));
  for (double w : r.loss.style_layer_weights) check_range(weight(w), "style_layer_weights", "finite and >= 0 each", num(w));
  if (r.loss.style_layers.empty()) {
    throw UsageError("a filter needs at least one style layer in " + field("style_layers") + " (e.g. relu1_2)");
  }
  deepest_layer(r.loss);  // names and the layer-weight count
  validate(r.arch);
  // A crop must still have a pixel at the deepest layer.
  const int min_side = vgg19_min_side(deepest_layer(r.loss));
  check_range(r.crop_size >= min_side, "crop_size", "at least " + std::to_string(min_side) + " px for these layers",
              std::to_string(r.crop_size));
}

FilterTrainer::FilterTrainer(std::shared_ptr<const Vgg19> vgg, Preprocessing preprocessing, const TrainRequest& r,
                             const at::Tensor& style_rgb, const at::Device& device)
    : vgg_(std::move(vgg)), preprocessing_(preprocessing), request_(r), device_(device), net_(r.arch, r.seed) {
  validate(r);
  if (deepest_layer(r.loss) > vgg_->last_index()) {
    throw UsageError("the loss layers reach deeper than the loaded network (cut after index " +
                     std::to_string(vgg_->last_index()) + ")");
  }
  content_idx_ = vgg19_layer_indices(r.loss.content_layers);
  style_idx_ = vgg19_layer_indices(r.loss.style_layers);
  style_layer_weights_ = r.loss.style_layer_weights;
  if (style_layer_weights_.empty()) style_layer_weights_.assign(style_idx_.size(), 1.0);
  style_ = compute_style_targets(*vgg_, r.loss, {preprocess(style_rgb.to(device), preprocessing)}, {});
  net_.to(device);
  net_.set_requires_grad(true);
  for (const auto& p : net_.parameters()) {
    m_.push_back(at::zeros_like(p).detach());
    v_.push_back(at::zeros_like(p).detach());
  }
}

at::Tensor FilterTrainer::batch(const PhotoSource& photos, int step) const {
  if (photos.count == 0) throw UsageError("no photos to train on");
  // One generator per step, seeded from (seed, step): resuming at step k draws what step k drew.
  std::seed_seq seq{static_cast<uint32_t>(request_.seed), static_cast<uint32_t>(request_.seed >> 32),
                    static_cast<uint32_t>(step)};
  std::mt19937_64 rng(seq);
  const int c = request_.crop_size;
  std::vector<at::Tensor> crops;
  for (int b = 0; b < request_.batch_size; ++b) {
    const size_t index = static_cast<size_t>(rng() % photos.count);
    const at::Tensor photo = photos.load(index);
    const int64_t h = photo.size(2), w = photo.size(3);
    if (h < c || w < c) {
      throw UsageError("photo " + std::to_string(index) + " is " + std::to_string(w) + "x" + std::to_string(h) +
                       ", smaller than " + field("crop_size") + " " + std::to_string(c));
    }
    const int64_t y = static_cast<int64_t>(rng() % static_cast<uint64_t>(h - c + 1));
    const int64_t x = static_cast<int64_t>(rng() % static_cast<uint64_t>(w - c + 1));
    at::Tensor crop = photo.narrow(2, y, c).narrow(3, x, c);
    if (rng() & 1) crop = crop.flip({3});  // mirror half the crops: twice the views of a small folder
    crops.push_back(crop);
  }
  return at::cat(crops, 0).contiguous();
}

LossTerms FilterTrainer::losses(const at::Tensor& rgb, const at::Tensor& out) const {
  const LossWeights& w = request_.loss;
  const auto batch_size = static_cast<double>(rgb.size(0));
  std::vector<at::Tensor> targets;
  {
    c10::NoGradGuard no_grad;
    if (!content_idx_.empty()) targets = vgg_->forward(preprocess(rgb, preprocessing_), content_idx_);
  }
  std::vector<int> idx = content_idx_;
  idx.insert(idx.end(), style_idx_.begin(), style_idx_.end());
  const at::Tensor input = preprocess(out, preprocessing_);
  const std::vector<at::Tensor> feats = vgg_->forward(input, idx);
  LossTerms t;
  for (size_t k = 0; k < content_idx_.size(); ++k) {
    t.content.push_back((feats[k].to(at::kFloat) - targets[k].to(at::kFloat)).pow(2).mean() * w.content_weight);
  }
  // The core's style term per image (its own Gram against the target), averaged over the batch.
  for (size_t l = 0; l < style_idx_.size(); ++l) {
    const at::Tensor& f = feats[content_idx_.size() + l];
    at::Tensor sum;
    for (int64_t b = 0; b < f.size(0); ++b) {
      at::Tensor term = (gram_matrix(f.narrow(0, b, 1)) - style_.grams[l]).pow(2).mean();
      sum = b == 0 ? term : sum + term;
    }
    t.style.push_back(sum * (w.style_weight * style_layer_weights_[l] / batch_size));
  }
  t.tv = total_variation(input) * (w.tv_weight / batch_size);
  at::Tensor total = t.tv;
  for (const auto& c : t.content) total = total + c;
  for (const auto& s : t.style) total = total + s;
  t.total = total;
  return t;
}

TrainStepResult FilterTrainer::step(const PhotoSource& photos) {
  const auto t0 = std::chrono::steady_clock::now();
  const at::Tensor rgb = batch(photos, step_ + 1).to(device_);
  for (auto& p : net_.parameters()) p.mutable_grad() = at::Tensor();
  const LossTerms terms = losses(rgb, net_.forward(rgb));
  terms.total.backward();
  // Adam (Kingma & Ba), with bias correction; written out so its moments are ours to checkpoint.
  // Computed aside and committed only when every tensor is done: a failure (memory) mid-update
  // leaves the network, the moments and the step as they were, so the run's last checkpoint written
  // on that failure is a true state (the same operations as in place: the same bytes).
  constexpr double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  const int t = step_ + 1;
  const double c1 = 1.0 - std::pow(beta1, t), c2 = 1.0 - std::pow(beta2, t);
  {
    c10::NoGradGuard no_grad;
    auto& params = net_.parameters();
    std::vector<at::Tensor> m(params.size()), v(params.size()), p(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& g = params[i].grad();
      m[i] = m_[i].mul(beta1).add_(g, 1.0 - beta1);
      v[i] = v_[i].mul(beta2).addcmul_(g, g, 1.0 - beta2);
      const at::Tensor denom = (v[i] / c2).sqrt_().add_(eps);
      p[i] = params[i].addcdiv(m[i], denom, -request_.learning_rate / c1);
    }
    for (size_t i = 0; i < params.size(); ++i) {
      m_[i].copy_(m[i]);
      v_[i].copy_(v[i]);
      params[i].copy_(p[i]);
    }
  }
  step_ = t;
  TrainStepResult r;
  r.step = step_;
  r.loss = to_values(terms);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

LossValues FilterTrainer::evaluate(const at::Tensor& rgb) const {
  c10::NoGradGuard no_grad;
  const at::Tensor x = rgb.to(device_);
  return to_values(losses(x, net_.forward(x)));
}

std::vector<std::pair<std::string, at::Tensor>> FilterTrainer::optimiser_state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < m_.size(); ++i) {
    out.push_back({"adam.m." + net_.names()[i], m_[i]});
    out.push_back({"adam.v." + net_.names()[i], v_[i]});
  }
  return out;
}

void FilterTrainer::resume(const FilterNet& net, const std::map<std::string, at::Tensor>& extra, int step) {
  if (net.arch().width != request_.arch.width || net.arch().residual_blocks != request_.arch.residual_blocks) {
    throw UsageError("the checkpoint's network (" + field("width") + " " + std::to_string(net.arch().width) + ", " +
                     field("residual_blocks") + " " + std::to_string(net.arch().residual_blocks) +
                     ") differs from the one asked for (" + field("width") + " " + std::to_string(request_.arch.width) +
                     ", " + field("residual_blocks") + " " + std::to_string(request_.arch.residual_blocks) +
                     "); resume with the checkpoint's, or start anew without resuming");
  }
  for (size_t i = 0; i < net.names().size(); ++i) {
    for (auto* moments : {&m_, &v_}) {
      const std::string name = (moments == &m_ ? "adam.m." : "adam.v.") + net.names()[i];
      auto it = extra.find(name);
      if (it == extra.end() || it->second.sizes() != net.parameters()[i].sizes()) {
        throw WeightsError("checkpoint tensor " + in_quotes(name) + " is missing or mis-shaped");
      }
      (*moments)[i] = it->second.to(device_).clone();
    }
    c10::NoGradGuard no_grad;
    net_.parameters()[i].copy_(net.parameters()[i]);
  }
  step_ = step;
}

}  // namespace stylize
