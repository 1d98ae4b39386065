// Print size: the tile grid, the tiled optimisation against the untiled one, and the plan choosing
// to tile when memory says so.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <array>

#include <cmath>

#include "stylize/recipe.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/tiling.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::error_of;

namespace {

const Stylizer& stylizer() { return stylize::test::synthetic_stylizer(vgg19_layer_index("relu2_1")); }

StylizeParams small_params(int iterations) {
  StylizeParams p;
  p.loss.content_layers = {"relu2_1"};
  p.loss.style_layers = {"relu1_1", "relu2_1"};
  p.loss.style_weight = 1000;
  p.optimizer.iterations = iterations;
  p.optimizer.lbfgs_history = 5;
  return p;
}

// The loss terms of the whole image `rgb`, evaluated untiled (a run of 0 iterations from it).
LossValues whole_terms(const at::Tensor& content, const StyleTargets& t, const at::Tensor& rgb) {
  StylizeParams p = small_params(0);
  p.init = InitKind::image;
  p.init_image = rgb;
  return stylizer().stylize(content, t, p).transfer.initial;
}

double whole_loss(const at::Tensor& content, const StyleTargets& t, const at::Tensor& rgb) {
  return whole_terms(content, t, rgb).total;
}

double relative(double a, double b) { return std::abs(a - b) / std::abs(b); }

// A request for plan() alone, which reads only the images' shapes: a blank content of height × width
// and a blank 512 px style, output `size` px.
StylizeRequest blank_request(int64_t height, int64_t width, int size) {
  StylizeRequest r = request_defaults(Preprocessing::caffe);
  r.content = at::zeros({1, 3, height, width});
  r.styles = {at::zeros({1, 3, 512, 512})};
  r.size = size;
  return r;
}

}  // namespace

TEST(Tiling, GridInteriorsPartitionTheImageAndCropsAddTheOverlap) {
  for (const auto& [w, h, tile] : std::vector<std::tuple<int, int, int>>{{100, 70, 32}, {37, 91, 16}, {64, 64, 64}}) {
    for (int sweep = 0; sweep < 4; ++sweep) {
      SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h) + " tile " + std::to_string(tile) + " sweep " +
                   std::to_string(sweep));
      const auto grid = tile_grid(w, h, tile, 5, 7, sweep);
      std::vector<int> covered(static_cast<size_t>(w * h), 0);
      for (const Tile& t : grid) {
        EXPECT_TRUE(t.interior.width >= tile / 2 || t.interior.width == w) << t.interior.width;
        EXPECT_LE(t.interior.width, tile * 3 / 2);
        EXPECT_LE(t.interior.height, tile * 3 / 2);
        EXPECT_EQ(t.crop.x, std::max(0, t.interior.x - 5));
        EXPECT_EQ(t.crop.x + t.crop.width, std::min(w, t.interior.x + t.interior.width + 5));
        for (int y = t.interior.y; y < t.interior.y + t.interior.height; ++y) {
          for (int x = t.interior.x; x < t.interior.x + t.interior.width; ++x) ++covered[static_cast<size_t>(y * w + x)];
        }
      }
      EXPECT_TRUE(std::all_of(covered.begin(), covered.end(), [](int c) { return c == 1; })) << "each pixel once";
    }
  }
  // Reproducible from the seed, moving between sweeps, aligned at sweep 0, one tile when it covers all.
  auto xs = [](const std::vector<Tile>& g) {
    std::vector<int> v;
    for (const auto& t : g) v.push_back(t.interior.x * 1000 + t.interior.y);
    return v;
  };
  EXPECT_EQ(xs(tile_grid(300, 200, 64, 8, 3, 2)), xs(tile_grid(300, 200, 64, 8, 3, 2)));
  EXPECT_NE(xs(tile_grid(300, 200, 64, 8, 3, 2)), xs(tile_grid(300, 200, 64, 8, 4, 2)));
  EXPECT_NE(xs(tile_grid(300, 200, 64, 8, 3, 1)), xs(tile_grid(300, 200, 64, 8, 3, 2)));
  EXPECT_EQ(tile_grid(300, 200, 64, 8, 3, 0)[1].interior.x, 64);
  EXPECT_EQ(tile_grid(48, 40, 48, 8, 3, 5).size(), 1u);
  // Both ends short (401 px, 200 px tiles, offset ~105): merged into one piece of up to 2 tiles,
  // then cut at its middle, so that no interior passes 1.5 tiles (the memory estimate's crop).
  for (int w = 380; w <= 420; ++w) {
    for (int sweep = 0; sweep < 40; ++sweep) {
      for (const Tile& t : tile_grid(w, 10, 200, 8, 1, sweep, 16)) {
        ASSERT_LE(t.interior.width, 300) << w << " px, sweep " << sweep;
        ASSERT_GE(t.interior.width, 100) << w << " px, sweep " << sweep;
      }
    }
  }
  // Aligned to a pooling stride: every cut and crop origin on it, the crops still holding the overlap.
  for (int sweep = 0; sweep < 6; ++sweep) {
    std::vector<int> covered(300 * 203, 0);
    for (const Tile& t : tile_grid(300, 203, 50, 7, 9, sweep, 8)) {
      EXPECT_EQ(t.interior.x % 8, 0);
      EXPECT_EQ(t.interior.y % 8, 0);
      EXPECT_EQ(t.crop.x % 8, 0);
      EXPECT_EQ(t.crop.y % 8, 0);
      EXPECT_LE(t.crop.x, std::max(0, t.interior.x - 7));
      EXPECT_GE(t.interior.width, 25);
      for (int y = t.interior.y; y < t.interior.y + t.interior.height; ++y) {
        for (int x = t.interior.x; x < t.interior.x + t.interior.width; ++x) ++covered[static_cast<size_t>(y * 300 + x)];
      }
    }
    EXPECT_TRUE(std::all_of(covered.begin(), covered.end(), [](int c) { return c == 1; })) << "sweep " << sweep;
  }
}

TEST(Tiling, OneTileCoveringEverythingIsExactlyTheUntiledRun) {
  const at::Tensor content = synthetic_image(40, 48, 1), style = synthetic_image(32, 32, 2);
  const StylizeParams p = small_params(6);
  const StyleTargets t = stylizer().style_targets(p.loss, {style}, {});
  const TiledResult tiled = optimize_tiled(stylizer(), content, content, t, p, 48, 8, 1, 0);
  StylizeParams q = p;
  q.init = InitKind::image;
  q.init_image = content;
  const StylizeOutput whole = stylizer().stylize(content, t, q);
  ASSERT_EQ(tiled.last_grid.size(), 1u);
  EXPECT_TRUE(at::equal(tiled.rgb, whole.rgb));
  EXPECT_EQ(tiled.final.total, whole.transfer.final.total);
  EXPECT_EQ(tiled.iterations, 6);
}

TEST(Tiling, TheTilesSumsAreTheWholeImagesLoss) {
  // Tiles at multiples of relu2_1's stride (2 px) with 8 px of context (its receptive field reaches
  // 5 px): each interior's features are the whole image's, so the sums over a partition are the
  // untiled loss, term by term, up to the order of summation.
  const at::Tensor content = synthetic_image(64, 48, 11), start = synthetic_image(64, 48, 12);
  const at::Tensor style = synthetic_image(40, 40, 13);
  const StylizeParams p = small_params(0);
  const StyleTargets t = stylizer().style_targets(p.loss, {style}, {});
  const TiledResult tiled = optimize_tiled(stylizer(), content, start, t, p, 16, 8, 0, 0);
  const LossValues whole = whole_terms(content, t, start);
  ASSERT_GT(whole.content_sum(), 0);
  ASSERT_EQ(tiled.initial.style.size(), 2u);
  EXPECT_LT(relative(tiled.initial.content[0], whole.content[0]), 1e-4);
  EXPECT_LT(relative(tiled.initial.style[0], whole.style[0]), 1e-4);
  EXPECT_LT(relative(tiled.initial.style[1], whole.style[1]), 1e-4);
  EXPECT_LT(relative(tiled.initial.tv, whole.tv), 1e-5);
  EXPECT_LT(relative(tiled.initial.total, whole.total), 1e-4);
  EXPECT_EQ(tiled.final.total, tiled.initial.total) << "no sweep: nothing moved";
}

TEST(Tiling, SeveralTilesReduceTheLossOfTheWholeImage) {
  const at::Tensor content = synthetic_image(56, 72, 3), style = synthetic_image(40, 40, 4);
  const StylizeParams p = small_params(10);
  const StyleTargets t = stylizer().style_targets(p.loss, {style}, {});
  const TiledResult tiled = optimize_tiled(stylizer(), content, content, t, p, 48, 8, 2, 1);
  EXPECT_GE(tiled.last_grid.size(), 2u);
  EXPECT_EQ(tiled.sweeps, 2);
  const double before = whole_loss(content, t, content), after = whole_loss(content, t, tiled.rgb);
  EXPECT_LT(after, 0.85 * before) << before << " -> " << after;
  // The reported loss is the whole image's (a last pass over the tiles), not a sum of tile losses.
  EXPECT_LT(relative(tiled.final.total, after), 1e-3) << tiled.final.total << " vs " << after;
  EXPECT_LT(relative(tiled.initial.total, before), 1e-3) << tiled.initial.total << " vs " << before;
}

TEST(Tiling, ASweepOfOneTileAmongSweepsOfSeveralStillOptimisesTheWholeImage) {
  // 72x56 in 52 px tiles: sweep 0 merges its 20 px sliver (one tile), a later offset cuts two. Each
  // of those visits optimises the whole image's objective, not its crop as an image of its own
  // (which painted each crop to its own Gram matrices, pasted its margin over the neighbour's and
  // reported the last crop's loss).
  const at::Tensor content = synthetic_image(56, 72, 3), style = synthetic_image(40, 40, 4);
  const StylizeParams p = small_params(8);
  const int align = vgg19_min_side(vgg19_layer_index("relu2_1"));
  ASSERT_EQ(tile_grid(72, 56, 52, 8, 5, 0, align).size(), 1u);
  int sweeps = 1;
  while (sweeps < 20 && tile_grid(72, 56, 52, 8, 5, sweeps, align).size() == 1) ++sweeps;
  ASSERT_LT(sweeps, 20) << "some sweep cuts several tiles";
  ++sweeps;  // the last sweep is one of several tiles
  const StyleTargets t = stylizer().style_targets(p.loss, {style}, {});
  const TiledResult tiled = optimize_tiled(stylizer(), content, content, t, p, 52, 8, sweeps, 5);
  EXPECT_GE(tiled.last_grid.size(), 2u);
  const double before = whole_loss(content, t, content), after = whole_loss(content, t, tiled.rgb);
  EXPECT_LT(after, before);
  EXPECT_LT(relative(tiled.final.total, after), 1e-3) << tiled.final.total << " vs " << after;
}

TEST(Tiling, SmallTilesFollowTheGlobalGramMatricesNotTheirOwn) {
  // Each visit optimises the whole image's objective: tiles far smaller than the image still lower
  // its loss, toward the untiled run's. (When each tile matched the style's Gram matrices on its
  // own crop, 24 and 36 px tiles of these images raised the whole image's loss above the start.)
  const at::Tensor content = synthetic_image(56, 72, 3), style = synthetic_image(40, 40, 4);
  const StylizeParams p = small_params(10);
  const StyleTargets t = stylizer().style_targets(p.loss, {style}, {});
  const double before = whole_loss(content, t, content);
  StylizeParams q = p;
  q.optimizer.iterations = 20;
  const double untiled = stylizer().stylize(content, t, q).transfer.final.total;
  // Overlap 16 lets a visit move 6 px into its margin (16 - 2 × relu2_1's 5 px radius).
  for (const auto& [tile, overlap] : std::vector<std::pair<int, int>>{{24, 8}, {36, 8}, {24, 16}}) {
    SCOPED_TRACE("tile " + std::to_string(tile) + " overlap " + std::to_string(overlap));
    const TiledResult tiled = optimize_tiled(stylizer(), content, content, t, p, tile, overlap, 2, 1);
    const double after = whole_loss(content, t, tiled.rgb);
    // Measured: 27228 at the start; 11046 (24 px) and 11181 (36 px) after two sweeps of 10
    // iterations per visit, against 11434 for an untiled run of 20 iterations.
    EXPECT_LT(after, 1.05 * untiled) << before << " -> " << after;
    EXPECT_LT(relative(tiled.final.total, after), 1e-3) << "the reported loss is the whole image's";
  }
}

// The mean field of a visit (LossRegion::gram_share): at the visit's start its style terms are the
// whole objective's times the share, and its pull on every pixel is the whole objective's own; a
// change of the region's Gram part counts 1/share times, as if every position had changed so.
TEST(Tiling, AMeanFieldVisitPullsAsTheWholeObjectiveAtItsStart) {
  const int last = vgg19_layer_index("relu2_1");
  const auto net = std::make_shared<const Vgg19>(synthetic_vgg19(1), Pooling::max, last);
  const StylizeParams p = small_params(0);
  const at::Tensor content = preprocess(synthetic_image(40, 48, 21), Preprocessing::caffe);
  const at::Tensor style = preprocess(synthetic_image(40, 40, 22), Preprocessing::caffe);
  const at::Tensor x0 = preprocess(synthetic_image(40, 48, 23), Preprocessing::caffe);
  StyleLoss loss(net, p.loss, compute_content_targets(*net, p.loss, content),
                 compute_style_targets(*net, p.loss, {style}, {}));
  LossRegion r;
  r.x = 8, r.y = 8, r.width = 24, r.height = 16, r.whole_width = 48, r.whole_height = 40;
  const LossSums part = loss.sums(x0, r);
  for (const auto& g : part.grams) r.gram_rest.push_back(g * 3.0 + 0.01);  // the rest of some larger image
  auto evaluate = [&](const LossRegion& region, const at::Tensor& at) {
    StyleLoss l = loss;
    l.set_region(region);
    const at::Tensor x = at.clone().requires_grad_(true);
    const LossTerms t = l.evaluate(x);
    t.total.backward();
    return std::make_pair(to_values(t), x.grad());
  };
  LossRegion mean_field = r;
  mean_field.gram_share = 0.25;
  mean_field.gram_before = part.grams;
  const auto [plain, plain_grad] = evaluate(r, x0);
  const auto [field, field_grad] = evaluate(mean_field, x0);
  ASSERT_EQ(field.style.size(), 2u);
  for (size_t k = 0; k < 2; ++k) EXPECT_LT(relative(field.style[k], 0.25 * plain.style[k]), 1e-5) << k;
  EXPECT_LT(relative(field.content[0], plain.content[0]), 1e-6);
  EXPECT_LT((field_grad - plain_grad).abs().max().item<double>(), 1e-4 * plain_grad.abs().max().item<double>());
  // Elsewhere the region's change counts 1/share times: the plain objective of an image whose rest
  // were rest + P0 + (P1 − P0)/share − P1, times the share.
  const at::Tensor x1 = preprocess(synthetic_image(40, 48, 24), Preprocessing::caffe);
  const LossSums moved = loss.sums(x1, r);
  LossRegion as_if = r;
  for (size_t k = 0; k < 2; ++k) {
    as_if.gram_rest[k] = r.gram_rest[k] + part.grams[k] + (moved.grams[k] - part.grams[k]) / 0.25 - moved.grams[k];
  }
  const auto [field1, f1] = evaluate(mean_field, x1);
  const auto [expected1, e1] = evaluate(as_if, x1);
  const auto [plain1, g1] = evaluate(r, x1);
  for (size_t k = 0; k < 2; ++k) EXPECT_LT(relative(field1.style[k], 0.25 * expected1.style[k]), 1e-4) << k;
  EXPECT_GT(relative(field1.style_sum(), 0.25 * plain1.style_sum()), 1e-3) << "not the plain objective";
}

TEST(Tiling, ThePlanTilesWhenAWholeRunDoesNotFitAndRefusesWhenNothingDoes) {
  StylizeRequest r = blank_request(768, 1024, 1024);
  r.iterations = {250};
  r.max_memory = 2000ull << 20;
  StylizePlan p = plan(r, at::kCPU, Precision::fp32);
  const ScalePlan& sp = p.scales.back();
  EXPECT_GT(sp.tile, 0);
  EXPECT_LT(sp.tile, 1024);
  EXPECT_LE(sp.estimated_peak_bytes, r.max_memory);
  EXPECT_EQ(sp.sweeps, 4) << "250 iterations at 100 per visit would make 3; at least 4 while visits keep 10";
  EXPECT_EQ(sp.tile_iterations, 63);
  EXPECT_NE(sp.tiling_reason.find("a whole 1024x768 run needs about"), std::string::npos) << sp.tiling_reason;
  EXPECT_EQ(sp.tiling_caveat, "") << "memory's tile is the largest that fits: nothing to advise";
  r.max_memory = 300ull << 20;
  EXPECT_NE(error_of<ResourceError>([&] { plan(r, at::kCPU, Precision::fp32); }).find("even a tiled one"),
            std::string::npos);
  // Asked for: a tile too small for the deepest layer, an overlap as large as the tile.
  r.max_memory = 0;
  r.tile = 8;
  r.tile_overlap = 4;
  EXPECT_NE(error_of<UsageError>([&] { plan(r, at::kCPU, Precision::fp32); }).find("the tile is 8x8 px"),
            std::string::npos);
  r.tile = 64;
  r.tile_overlap = 64;
  EXPECT_EQ(error_of<FieldError>([&] { validate(r); }), "`tile_overlap` must be smaller than `tile` (64), got 64; give a smaller `tile_overlap` (default 64) or a larger `tile`");
}

// What a tiled sweep costs: the crops' areas over the image's, as tile_grid cuts them, for any
// shape, tile, context and pooling alignment (computed without building the grid).
TEST(Tiling, TheNetworksPixelsPerSweepAreTheCropsAreas) {
  for (const auto& [w, h, tile, overlap, align] : std::vector<std::array<int, 5>>{
           {512, 384, 16, 85, 16}, {512, 384, 160, 85, 16}, {1000, 37, 24, 8, 1}, {96, 128, 48, 85, 16},
           {777, 555, 100, 40, 4}, {64, 64, 64, 8, 1}}) {
    double crops = 0;
    for (const Tile& t : tile_grid(w, h, tile, overlap, 0, 0, align)) crops += static_cast<double>(t.crop.width) * t.crop.height;
    EXPECT_DOUBLE_EQ(network_pixels_ratio(w, h, tile, overlap, align), crops / (static_cast<double>(w) * h))
        << w << "x" << h << " tile " << tile << " overlap " << overlap << " align " << align;
  }
  EXPECT_EQ(network_pixels_ratio(64, 64, 64, 8), 1.0) << "one tile of the whole image";
}

// An asked-for tile whose context is most of what the network sees is said to cost what it does,
// with the smallest tile (a multiple of 32) that costs at most 3x; memory's own tile never is, and
// of several scales only the output's carries it.
TEST(Tiling, AnAskedForTileMostlyContextIsCaveatedWithOneThatCostsLess) {
  StylizeRequest r = blank_request(384, 512, 512);  // relu5_1: 85 px of context per side
  r.iterations = {10};
  r.max_memory = 64ull << 30;  // whatever this machine has free: the asked-for tile decides
  auto scale = [&](int tile, int overlap) {
    r.tile = tile;
    r.tile_overlap = overlap;
    return plan(r, at::kCPU, Precision::fp32).scales.back();
  };
  ScalePlan sp = scale(0, 64);
  EXPECT_EQ(sp.network_pixels_ratio, 1.0);
  EXPECT_EQ(sp.tiling_caveat, "");
  sp = scale(16, 8);
  // Interiors of 16 px (8..24 at the edges of the grid), crops up to 16 + 2·85 px wide, clipped.
  EXPECT_GT(sp.network_pixels_ratio, 100);
  EXPECT_LT(sp.network_pixels_ratio, (186.0 * 186) / (16 * 16));
  EXPECT_EQ(sp.tiling_caveat, "`tile` 16 with 85 px of context per side runs the network over 119.5x the image's "
                              "pixels (untiled: 1x); a `tile` of 160 keeps it within 3x, if memory allows");
  EXPECT_GT(scale(128, 64).network_pixels_ratio, 3) << "so 160 is the smallest multiple of 32 within 3x";
  sp = scale(160, 64);
  EXPECT_LE(sp.network_pixels_ratio, 3);
  EXPECT_GT(sp.network_pixels_ratio, 1);
  EXPECT_EQ(sp.tiling_caveat, "");
  // A context wider than the receptive radius is the user's: a smaller one is named too.
  EXPECT_NE(scale(96, 90).tiling_caveat.find(", and a smaller `tile_overlap` (down to 85) costs less, if memory allows"),
            std::string::npos)
      << scale(96, 90).tiling_caveat;
  // Two scales, both tiled by 48 px: each logs its cost, only the output's scale advises.
  r.scales = 2;
  r.iterations = {10};
  const StylizePlan p = [&] {
    r.tile = 48;
    r.tile_overlap = 8;
    return plan(r, at::kCPU, Precision::fp32);
  }();
  ASSERT_EQ(p.scales.size(), 2u);
  EXPECT_GT(p.scales[0].network_pixels_ratio, 4);
  EXPECT_EQ(p.scales[0].tiling_caveat, "");
  EXPECT_NE(p.scales[1].tiling_caveat.find("`tile` 48 with 85 px"), std::string::npos);
  // On a small image the advice may be a tile that makes one tile of the whole: 1x.
  r = blank_request(96, 128, 128);
  r.iterations = {10};
  r.max_memory = 64ull << 30;
  EXPECT_NE(scale(48, 8).tiling_caveat.find("6.0x the image's pixels (untiled: 1x); a `tile` of 96 keeps it"),
            std::string::npos);
  EXPECT_EQ(scale(96, 8).network_pixels_ratio, 1.0) << "interiors reach 1.5 tile: one tile of the whole image";
  EXPECT_EQ(scale(96, 8).tile, 0) << "a tile that would not cut the scale runs it whole, and says so";
}

// A tiled print's coarse scales that one tile would cover run whole (they were logged and reported
// as tiled by N px, 1.0x); the scale that the tile cuts is tiled. 160 px in two scales, 64 px tiles:
// 80x60 (under 1.5 tiles a side) whole, 160x120 tiled.
TEST(Tiling, AScaleOneTileWouldCoverRunsWhole) {
  StylizeRequest r = blank_request(120, 160, 160);
  r.scales = 2;
  r.iterations = {10};
  r.tile = 64;
  r.tile_overlap = 24;
  r.max_memory = 64ull << 30;
  const StylizePlan p = plan(r, at::kCPU, Precision::fp32);
  ASSERT_EQ(p.scales.size(), 2u);
  EXPECT_EQ(p.scales[0].width, 80);
  EXPECT_EQ(p.scales[0].tile, 0) << p.scales[0].tiling_reason;
  EXPECT_EQ(p.scales[0].tiling_reason, "");
  EXPECT_EQ(p.scales[1].tile, 64);
  EXPECT_GT(p.scales[1].network_pixels_ratio, 1.0);
}

// What front-ends tell their users of a run: the stretched start image (named as they name it, or by
// its field) and the output scale's tiling caveat, in that order; nothing for a plain run.
TEST(Tiling, RunWarningsAreTheStretchedStartAndTheOutputsTileCaveat) {
  StylizeRequest r = blank_request(96, 128, 128);  // a 512x512 style: another shape
  r.iterations = {10};
  r.max_memory = 64ull << 30;
  EXPECT_EQ(run_warnings(r, plan(r, at::kCPU, Precision::fp32)), std::vector<std::string>{}) << "init content";
  r.init = InitFrom::style;
  const std::string stretched = "is 512x512 and the content 128x96: it is stretched to the content's shape";
  EXPECT_EQ(init_stretch_warning(r), "the first style image (`init` style) " + stretched);
  EXPECT_EQ(init_stretch_warning(r, "'starry.jpg'"), "'starry.jpg' " + stretched);
  r.init = InitFrom::image;
  r.init_image = at::zeros({1, 3, 300, 400});  // 4:3 as the content: no stretch
  EXPECT_EQ(init_stretch_warning(r), "");
  r.init_image = at::zeros({1, 3, 300, 300});
  EXPECT_EQ(init_stretch_warning(r), "the `init` image is 300x300 and the content 128x96: it is stretched to the "
                                     "content's shape");
  r.tile = 48;
  r.tile_overlap = 8;
  const std::vector<std::string> both = run_warnings(r, plan(r, at::kCPU, Precision::fp32), "START");
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0], "START is 300x300 and the content 128x96: it is stretched to the content's shape");
  EXPECT_EQ(both[1].rfind("`tile` 48 with 85 px of context per side runs the network over 6.0x", 0), 0u) << both[1];
}

// A tiled scale sweeps at least 4 times while each visit keeps 10 iterations (recipe.cpp: in one
// sweep the first tiles take the whole picture's style deficit and the last ones stay the photo),
// never more than tile_iterations per visit, about n iterations per pixel in all.
TEST(Tiling, ThePlanSweepsAtLeastFourTimesWhileVisitsKeepTenIterations) {
  StylizeRequest r = blank_request(48, 64, 64);
  r.tile = 32;
  r.tile_overlap = 8;
  // (n, tile_iterations) -> (sweeps, iterations per visit)
  const int cases[][4] = {{100, 100, 4, 25}, {1000, 100, 10, 100}, {250, 100, 4, 63}, {20, 100, 2, 10},
                          {39, 100, 3, 13},  {3, 3, 1, 3},          {6, 3, 2, 3},      {200, 25, 8, 25},
                          {0, 100, 0, 0}};
  for (const auto& c : cases) {
    r.iterations = {c[0]};
    r.tile_iterations = c[1];
    const ScalePlan sp = plan(r, at::kCPU, Precision::fp32).scales.back();
    ASSERT_GT(sp.tile, 0);
    EXPECT_EQ(sp.sweeps, c[2]) << "-n " << c[0] << " --tile-iterations " << c[1];
    EXPECT_EQ(sp.tile_iterations, c[3]) << "-n " << c[0] << " --tile-iterations " << c[1];
  }
}

TEST(Tiling, TheRecipeTilesAScaleAndReportsItsLastGrid) {
  StylizeRequest r = request_defaults(Preprocessing::caffe);
  r.content = synthetic_image(40, 64, 5);
  r.styles = {synthetic_image(64, 64, 6)};
  r.size = 64;
  r.iterations = {6};
  r.tile = 32;
  r.tile_overlap = 8;
  r.tile_iterations = 3;
  r.lbfgs_history = 5;
  r.loss = small_params(0).loss;
  int tiles_seen = 0;
  RunCallbacks cb;
  cb.on_tile = [&](int, const TileProgress& t) {
    ++tiles_seen;
    EXPECT_EQ(t.sweeps, 2);
  };
  const StylizeResult res = run(stylizer(), r, cb);
  ASSERT_EQ(res.scales.size(), 1u);
  const ScaleResult& sr = res.scales[0];
  EXPECT_EQ(sr.plan.tile, 32);
  EXPECT_EQ(sr.plan.sweeps, 2);
  int area = 0;
  for (const Tile& t : sr.tiles) area += t.interior.width * t.interior.height;
  EXPECT_EQ(area, 64 * 40);
  EXPECT_GT(tiles_seen, static_cast<int>(sr.tiles.size())) << "two sweeps";
  EXPECT_EQ(res.rgb.size(3), 64);
  EXPECT_EQ(res.iterations, 3 * tiles_seen);
  // Snapshots every N of each tile's iterations: after the sweeps that reach a multiple of N, never
  // after the last (that image is the output). 4 sweeps of 2 (at 2, 4, 6, 8): N = 3 gives 4 and 6
  // (they pass 3 and 6), N = 5 gives 6, N = 1000 none; before, every sweep wrote one, the last too.
  r.tile_iterations = 2;
  r.iterations = {8};  // 4 sweeps of 2
  for (const auto& [every, expected] : std::vector<std::pair<int, std::vector<int>>>{{2, {2, 4, 6}}, {3, {4, 6}}, {5, {6}}, {1000, {}}}) {
    RunCallbacks snap;
    std::vector<int> at;
    snap.snapshot_every = every;
    snap.on_snapshot = [&](int iteration, const at::Tensor&) { at.push_back(iteration); };
    const StylizeResult sn = run(stylizer(), r, snap);
    ASSERT_EQ(sn.scales[0].plan.sweeps, 4);
    EXPECT_EQ(at, expected) << "--save-every " << every;
  }
  r.tile_iterations = 3;
  r.iterations = {6};
  // With the content's colours kept, the written image is another image: scored tile by tile as the
  // optimised one was, not reported as the optimised one's loss.
  r.original_colors = true;
  const StylizeResult kept = run(stylizer(), r, {});
  const StyleTargets targets = stylizer().style_targets(r.loss, {r.styles[0]}, {});
  const double written = whole_loss(r.content, targets, kept.rgb.round());  // in 8 bits, as a file holds it
  EXPECT_LT(relative(kept.written.total, written), 1e-3) << kept.written.total << " vs " << written;
  EXPECT_GT(relative(kept.written.total, kept.final.total), 1e-3) << "the colours changed the loss";
}

TEST(Tiling, AContextNarrowerThanTheReceptiveFieldIsWidenedToIt) {
  // Overlap 0 with relu2_1 (radius 5): crops cut at the interiors would make the features along
  // every border see the crop's edge (measured on real weights: seams, and a reported loss 2.2x the
  // image's). Each crop gets the radius as context, so the sums are the image's own.
  const int radius = receptive_radius(vgg19_layer_index("relu2_1"));
  EXPECT_EQ(radius, 5);
  EXPECT_EQ(receptive_radius(vgg19_layer_index("relu5_1")), 85);
  const at::Tensor content = synthetic_image(56, 72, 3), style = synthetic_image(40, 40, 4);
  const StylizeParams p = small_params(6);
  const StyleTargets t = stylizer().style_targets(p.loss, {style}, {});
  const TiledResult tiled = optimize_tiled(stylizer(), content, content, t, p, 24, 0, 2, 1);
  ASSERT_GE(tiled.last_grid.size(), 4u);
  for (const Tile& tile : tiled.last_grid) {
    if (tile.interior.x > 0) {
      EXPECT_GE(tile.interior.x - tile.crop.x, radius);
    }
    if (tile.interior.y > 0) {
      EXPECT_GE(tile.interior.y - tile.crop.y, radius);
    }
  }
  EXPECT_LT(relative(tiled.initial.total, whole_loss(content, t, content)), 1e-3);
  EXPECT_LT(relative(tiled.final.total, whole_loss(content, t, tiled.rgb)), 1e-3);
  // The plan says the same context, and sizes memory by it.
  StylizeRequest r = blank_request(48, 64, 64);
  r.loss = p.loss;
  r.tile = 32;
  r.tile_overlap = 0;
  EXPECT_EQ(plan(r, at::kCPU, Precision::fp32).scales.back().tile_overlap, radius);
  r.tile_overlap = 8;
  EXPECT_EQ(plan(r, at::kCPU, Precision::fp32).scales.back().tile_overlap, 8);
}


TEST(Tiling, TiledStyleTargetsAreTheWholeImagesGramMatricesUpToTheBorders) {
  const Stylizer& s = stylize::test::synthetic_stylizer(29);
  LossWeights loss;  // relu1_1 ... relu5_1
  const at::Tensor a = synthetic_image(96, 120, 7), b = synthetic_image(80, 80, 8);
  const StyleTargets whole = s.style_targets(loss, {a, b}, {3, 1});
  const StyleTargets tiled = s.style_targets_tiled(loss, {a, b}, {3, 1}, 48, 32);
  const StyleTargets one = s.style_targets_tiled(loss, {a, b}, {3, 1}, 200, 32);
  ASSERT_EQ(tiled.grams.size(), whole.grams.size());
  for (size_t l = 0; l < whole.grams.size(); ++l) {
    SCOPED_TRACE(loss.style_layers[l]);
    const double rel = ((tiled.grams[l] - whole.grams[l]).norm() / whole.grams[l].norm()).item<double>();
    // Measured: below 1e-4 up to relu4_1, 0.044 at relu5_1 (its features see past 32 px of context).
    EXPECT_LT(rel, l + 1 < whole.grams.size() ? 0.01 : 0.08);
    EXPECT_TRUE(at::allclose(one.grams[l], whole.grams[l], 1e-5, 1e-7)) << "one tile: the whole image";
  }
}
