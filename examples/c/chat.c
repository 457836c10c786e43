/* Opens a model, renders a one-question chat prompt and streams a greedy answer to stdout.
 *
 *   cc -I include examples/c/chat.c target/release/libedgelm.a -lpthread -ldl -lm -o chat
 *   ./chat SmolLM2-135M-Instruct.q4.edgelm "What is the capital of France?" [max_tokens]
 *
 * Valid C and C++ (examples/c/test.sh builds it as both). */
#include <stdio.h>
#include <stdlib.h>

#include "edgelm.h"

#define CHECK(call)                                                                  \
  do {                                                                               \
    if ((call) != EDGELM_STATUS_OK) {                                                \
      fprintf(stderr, "chat: %s failed: %s\n", #call, edgelm_last_error());          \
      return 1;                                                                      \
    }                                                                                \
  } while (0)

static int print_piece(const char *text, size_t len, void *user_data) {
  (void)user_data;
  fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0; /* nonzero would stop generation */
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.edgelm QUESTION [MAX_TOKENS]\n", argv[0]);
    return 2;
  }
  if (edgelm_api_version() != EDGELM_API_VERSION) {
    fprintf(stderr, "chat: built against edgelm API %d, linked with %u\n", EDGELM_API_VERSION,
            (unsigned)edgelm_api_version());
    return 1;
  }
  EdgelmModel *model = NULL;
  CHECK(edgelm_model_open(argv[1], &model));

  /* The prompt: ask for its size, then render into a buffer of that size. */
  EdgelmMessage messages[1] = {{"user", argv[2]}};
  size_t n_prompt = 0;
  if (edgelm_chat_tokens(model, messages, 1, NULL, 0, &n_prompt) != EDGELM_STATUS_BUFFER_TOO_SMALL) {
    fprintf(stderr, "chat: %s\n", edgelm_last_error());
    return 1;
  }
  uint32_t *prompt = (uint32_t *)malloc(n_prompt * sizeof *prompt);
  if (!prompt) return 1;
  CHECK(edgelm_chat_tokens(model, messages, 1, prompt, n_prompt, &n_prompt));

  EdgelmSession *session = NULL;
  CHECK(edgelm_session_new(model, NULL, &session));
  EdgelmSamplerParams params = edgelm_sampler_params_default();
  params.temperature = 0.0f; /* greedy */
  EdgelmSampler *sampler = NULL;
  CHECK(edgelm_sampler_new(model, &params, &sampler));
  /* Sessions and samplers keep what they need of the model. */
  CHECK(edgelm_model_free(model));

  EdgelmGenerateOptions opts = edgelm_generate_options_default();
  opts.max_tokens = argc > 3 ? (uint32_t)atoi(argv[3]) : 128;
  EdgelmGenerateStats stats;
  CHECK(edgelm_generate(session, sampler, prompt, n_prompt, &opts, print_piece, NULL, &stats));
  printf("\n");
  fprintf(stderr, "chat: prompt %zu tokens, generated %zu tokens at %.1f tok/s, stop reason %d\n",
          stats.prompt_tokens, stats.generated_tokens,
          stats.generation_seconds > 0 ? stats.generated_tokens / stats.generation_seconds : 0.0,
          (int)stats.stop);

  free(prompt);
  CHECK(edgelm_sampler_free(sampler));
  CHECK(edgelm_session_free(session));
  return 0;
}
