// The request layer on its own: defaults in one place, fields read from text and back, every range
// and count checked by validate() with the field named, and plan() sizing every scale.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "stylize/recipe.hpp"
#include "stylize/request.hpp"
#include "stylize/stylizer.hpp"
#include "stylize/synthetic.hpp"
#include "stylize/vgg19.hpp"
#include "support.hpp"

using namespace stylize;
using stylize::test::error_of;

namespace {

// The FieldError validate() or set_field() throws for `r`, or none.
const FieldError* refusal(const std::function<void()>& f, FieldError& storage) {
  try {
    f();
  } catch (const FieldError& e) {
    storage = e;
    return &storage;
  }
  return nullptr;
}

}  // namespace

TEST(Request, DefaultsLiveInRequestDefaultsAndMatchTheLossHeader) {
  const StylizeRequest caffe = request_defaults(Preprocessing::caffe);
  const LossWeights header;
  EXPECT_EQ(caffe.loss.content_weight, header.content_weight);
  EXPECT_EQ(caffe.loss.style_weight, header.style_weight);
  EXPECT_EQ(caffe.loss.tv_weight, header.tv_weight);
  EXPECT_EQ(caffe.loss.content_layers, header.content_layers);
  EXPECT_EQ(caffe.loss.style_layers, header.style_layers);
  const StylizeRequest tv = request_defaults(Preprocessing::torchvision);
  EXPECT_EQ(tv.loss.style_weight, 1e6);
  EXPECT_EQ(tv.loss.tv_weight, 0.5);
  EXPECT_NO_THROW(validate(caffe));
  EXPECT_NO_THROW(validate(tv));
}

TEST(Request, EveryFieldReadsBackItsOwnText) {
  const StylizeRequest d = request_defaults(Preprocessing::caffe);
  for (const RequestField& f : request_fields()) {
    SCOPED_TRACE(f.name);
    const std::string text = field_text(d, f.name);
    if (text.empty()) continue;  // learning_rate: unset by default
    StylizeRequest r = request_defaults(Preprocessing::torchvision);
    set_field(r, f.name, text);
    EXPECT_EQ(field_text(r, f.name), text);
  }
  StylizeRequest r = d;
  set_field(r, "iterations", "400, 300,100");
  EXPECT_EQ(r.iterations, (std::vector<int>{400, 300, 100}));
  set_field(r, "style_layers", "relu1_1,relu2_1");
  EXPECT_EQ(r.loss.style_layers, (std::vector<std::string>{"relu1_1", "relu2_1"}));
  set_field(r, "unbounded", "1");
  EXPECT_TRUE(r.unbounded);
  set_field(r, "seed", "18446744073709551615");
  EXPECT_EQ(r.seed, 18446744073709551615ull);
}

TEST(Request, TextThatIsNotOfTheFieldsTypeIsASyntaxError) {
  FieldError e("", FieldError::syntax, "");
  for (const auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
           {"size", "12px"}, {"size", ""}, {"iterations", "1,,2"}, {"iterations", "3.5"}, {"style_weight", "nan"},
           {"optimizer", "LBFGS"}, {"seed", "-1"}, {"seed", "18446744073709551616"}, {"original_colors", "yes"}}) {
    SCOPED_TRACE(name + " = " + text);
    StylizeRequest r;
    const FieldError* got = refusal([&] { set_field(r, name, text); }, e);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->field, name);
    EXPECT_EQ(got->kind, FieldError::syntax);
    EXPECT_EQ(std::string(got->what()).rfind("`" + name + "` must be", 0), 0u) << got->what();
  }
  StylizeRequest r;
  const FieldError* got = refusal([&] { set_field(r, "stlye_weight", "1"); }, e);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->kind, FieldError::unknown);
}

TEST(Request, ValidateNamesTheFieldAndTheRangeItAccepts) {
  struct Case {
    std::string field, text, message;
    FieldError::Kind kind = FieldError::range;
  };
  const std::vector<Case> cases = {
      {"style_weight", "-1", "`style_weight` must be >= 0, got -1"},
      {"size", "15", "`size` must be in 16..16384, got 15"},
      {"style_scale", "9", "`style_scale` must be in 0.05..8, got 9"},
      {"scales", "0", "`scales` must be in 1..6, got 0"},
      {"iterations", "10,-2", "`iterations` must be in 0..1000000, got -2"},
      {"learning_rate", "0", "`learning_rate` must be > 0, got 0"},
      {"lbfgs_history", "1001", "`lbfgs_history` must be in 1..1000, got 1001"},
      {"style_layer_weights", "1,2", "`style_layer_weights` has 2 weights for 5 style layers"},
      {"style_blend", "0", "`style_blend` must be weights with a sum above 0, got 0"},
      // Not a layer's name: not of the field's type (serve: bad_field); a real layer past the weights
      // is out of range (check_network_reaches).
      {"content_layers", "relu9_1", "`content_layers`: unknown VGG19 layer 'relu9_1'", FieldError::syntax},
      {"style_layers", "relu1_1,relu2_1,relu1_1", "`style_layers` names relu1_1 twice; name each layer once"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field + " = " + c.text);
    StylizeRequest r = request_defaults(Preprocessing::caffe);
    set_field(r, c.field, c.text);
    FieldError e("", FieldError::syntax, "");
    const FieldError* got = refusal([&] { validate(r); }, e);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->field, c.field);
    EXPECT_EQ(got->kind, c.kind);
    EXPECT_EQ(std::string(got->what()).rfind(c.message, 0), 0u) << got->what();
  }
  // Counts against each other: one iteration value, or one per scale; the first scale >= 32 px.
  StylizeRequest r = request_defaults(Preprocessing::caffe);
  r.scales = 3;
  r.iterations = {1, 2};
  EXPECT_EQ(error_of<FieldError>([&] { validate(r); }),
            "`iterations` has 2 values for 3 scales; give one value or one per scale");
  r.iterations = {1, 2, 3};
  r.size = 64;
  EXPECT_EQ(error_of<FieldError>([&] { validate(r); }),
            "`scales` 3 makes the first scale 16 px (at least 32 needed); use fewer scales or a `size` of at least 126");
  r.size = 125;  // the size it names is the least that works: 125 / 4 rounds to 31
  EXPECT_NE(error_of<FieldError>([&] { validate(r); }), test::kNoError);
  r.size = 126;
  EXPECT_EQ(error_of<FieldError>([&] { validate(r); }), test::kNoError);
  // An L-BFGS setting given beside adam would be ignored: refused, whichever it is; one inherited
  // from the layer below (a server's flags under a form's adam) is a default and passes.
  for (const std::string name : {"line_search", "lbfgs_history"}) {
    StylizeRequest a = request_defaults(Preprocessing::caffe);
    set_field(a, "optimizer", "adam");
    set_field(a, name, name == "line_search" ? "strong-wolfe" : "5");
    EXPECT_EQ(error_of<FieldError>([&] { check_given_fields_apply(a, {"optimizer", name}); }),
              "`" + name + "` applies to `optimizer` lbfgs only, not adam; drop `" + name + "` or use `optimizer` lbfgs");
    EXPECT_NO_THROW(check_given_fields_apply(a, {"optimizer", "size"}));
    set_field(a, "optimizer", "lbfgs");
    EXPECT_NO_THROW(check_given_fields_apply(a, {"optimizer", name}));
  }
  // Far beyond an int: refused as typed, not clamped first and then reported as the clamped number.
  EXPECT_EQ(error_of<FieldError>([&] { set_field(r, "size", "99999999999"); }), "`size` must be in 16..16384, got 99999999999");
}

TEST(Recipe, PlanSizesEveryScaleAndRefusesTooSmallImagesBeforeAnyWork) {
  StylizeRequest r = request_defaults(Preprocessing::caffe);
  r.content = at::zeros({1, 3, 36, 48});
  r.styles = {at::zeros({1, 3, 100, 50})};
  r.size = 64;
  r.scales = 2;
  r.iterations = {30, 20};
  const StylizePlan p = plan(r, at::kCPU, Precision::fp32);
  EXPECT_EQ(p.width, 64);
  EXPECT_EQ(p.height, 48);
  ASSERT_EQ(p.scales.size(), 2u);
  EXPECT_EQ(p.scales[0].size, 32);
  EXPECT_EQ(p.scales[0].width, 32);
  EXPECT_EQ(p.scales[0].height, 24);
  EXPECT_EQ(p.scales[0].iterations, 30);
  EXPECT_EQ(p.scales[1].iterations, 20);
  EXPECT_EQ(p.scales[1].style_longest, 64);
  EXPECT_EQ(p.scales[1].style_sizes[0], std::make_pair(32, 64));
  EXPECT_EQ(p.scales[0].style_sizes[0], std::make_pair(16, 32));
  EXPECT_EQ(p.last_index, deepest_layer(r.loss));
  // relu5_1 needs 16 px per side: at style_scale 0.5 the coarse scale's style image is 8x16.
  r.style_scale = 0.5;
  const std::string small_style = error_of<UsageError>([&] { plan(r, at::kCPU, Precision::fp32); });
  EXPECT_NE(small_style.find("the style image at its working size is 8x16 px"), std::string::npos) << small_style;
  EXPECT_NE(small_style.find("use a larger `style_scale` or `size`"), std::string::npos) << small_style;
  {
    // The style image goes through the style layers only: with them at relu2_1 (2 px), a content
    // layer as deep as relu5_1 asks nothing of the 8x16 style image, and the style's own deepest
    // layer is the one a too-small style image is told of.
    StylizeRequest shallow = r;
    shallow.loss.style_layers = {"relu1_1", "relu2_1"};
    shallow.loss.style_layer_weights.clear();
    shallow.loss.content_layers = {"relu5_1"};
    EXPECT_NO_THROW(plan(shallow, at::kCPU, Precision::fp32));
    shallow.loss.style_layers = {"relu1_1", "relu5_1"};
    shallow.loss.content_layers = {"relu2_1"};
    const std::string deep = error_of<UsageError>([&] { plan(shallow, at::kCPU, Precision::fp32); });
    EXPECT_NE(deep.find("8x16 px, but layer relu5_1 needs at least 16 px"), std::string::npos) << deep;
  }
  // The output too small: its size is the fix, not the style's scale.
  r.style_scale = 1;
  r.scales = 1;
  r.iterations = {10};
  r.size = 15 + 1;
  r.loss.style_layers = {"relu5_1"};
  r.content = at::zeros({1, 3, 12, 48});
  const std::string small_output = error_of<UsageError>([&] { plan(r, at::kCPU, Precision::fp32); });
  EXPECT_NE(small_output.find("the output is 16x4 px"), std::string::npos) << small_output;
  EXPECT_NE(small_output.find("use a larger `size`, or shallower layers"), std::string::npos) << small_output;
  r.styles.clear();
  EXPECT_NE(error_of<UsageError>([&] { plan(r, at::kCPU, Precision::fp32); }).find("no style image"), std::string::npos);
}

// The targets cache keys the blend by each style's share: one style with style_blend [1] is the
// default blend, and 6,2 is 3,1, so each pair computes its targets once (before, [1] computed again).
TEST(Recipe, RequestsThatBlendAlikeShareTheirStyleTargets) {
  StylizeRequest r = request_defaults(Preprocessing::caffe);
  r.content = synthetic_image(24, 32, 1);
  r.styles = {synthetic_image(32, 32, 2)};
  r.size = 32;
  r.iterations = {1};
  r.loss.style_layers = {"relu1_1"};
  r.loss.content_layers = {"relu1_2"};
  r.resize = [](const at::Tensor& t, int w, int h) {
    return at::upsample_bilinear2d(t, {h, w}, false);
  };
  r.style_key = "one";
  StyleTargetCache cache;
  const Stylizer& s = stylize::test::synthetic_stylizer(vgg19_layer_index("relu1_2"));
  run(s, r, {}, &cache);
  r.style_blend = {1};
  run(s, r, {}, &cache);
  EXPECT_EQ(cache.computations(), 1);
  r.styles.push_back(synthetic_image(32, 32, 3));
  r.style_key = "two";
  r.style_blend = {3, 1};
  run(s, r, {}, &cache);
  r.style_blend = {6, 2};
  run(s, r, {}, &cache);
  EXPECT_EQ(cache.computations(), 2);
  r.style_blend = {1, 1};
  run(s, r, {}, &cache);
  EXPECT_EQ(cache.computations(), 3) << "another blend, other targets";
}
