// The guided greedy loop of guided_loop.py in plain C against the same libllama (the one
// the llama-cpp-python wheel built), to measure what the Python/ctypes layer costs.
// Same context parameters as llama_cpp.Llama's defaults (n_ctx 256, n_batch = n_ubatch =
// 256, flash attention off, mmap on), same prompt length, warm-up, interleaving and medians.
//
// Build (see README.md):
//   SP=/tmp/lcvenv/lib/python3.11/site-packages
//   gcc -O2 -o /tmp/guided_loop_c guided_loop.c -I$SP/include -L$SP/llama_cpp/lib
//       -lllama -lggml -lggml-base -Wl,-rpath,$SP/llama_cpp/lib -lm
// Run:
//   /tmp/guided_loop_c GGUF_DIR f32,f16,q8_0,q4_k_m PROMPT DECODE REPEATS THREADS m1 m2 m3
// Prints one JSON line per format (same keys as guided_loop.py --json).

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"

#define MAX_MODELS 8
#define MAX_FORMATS 8
#define MAX_REPEATS 32

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)level; (void)text; (void)ud;
}

typedef struct {
    struct llama_model *model;
    struct llama_context *ctx;
    double forward;
} Model;

typedef struct {
    double prefill, decode, combine, forward[MAX_MODELS];
    int first_tokens[8];
} Run;

static int n_vocab;

static const float *eval(Model *m, llama_token *toks, int n) {
    double t0 = now();
    if (llama_decode(m->ctx, llama_batch_get_one(toks, n)) != 0) {
        fprintf(stderr, "llama_decode failed\n");
        exit(1);
    }
    const float *lg = llama_get_logits_ith(m->ctx, -1);
    m->forward += now() - t0;
    return lg;
}

// out = x - logsumexp(x)
static void log_softmax_add(const float *x, float w, float *acc, int first) {
    float mx = x[0];
    for (int i = 1; i < n_vocab; i++) if (x[i] > mx) mx = x[i];
    double s = 0;
    for (int i = 0; i < n_vocab; i++) s += exp((double)(x[i] - mx));
    float lse = mx + (float)log(s);
    for (int i = 0; i < n_vocab; i++) {
        float v = w * (x[i] - lse);
        acc[i] = first ? v : acc[i] + v;
    }
}

static Run one_run(Model *ms, int n_models, llama_token *prompt, int n_prompt, int n_decode, int guided) {
    Run r;
    memset(&r, 0, sizeof r);
    int use = guided ? n_models : 1;
    const float *lg[MAX_MODELS];
    float *acc = malloc(sizeof(float) * n_vocab);
    for (int i = 0; i < use; i++) {
        llama_memory_clear(llama_get_memory(ms[i].ctx), true);
        ms[i].forward = 0;
    }
    double t0 = now();
    for (int i = 0; i < use; i++) lg[i] = eval(&ms[i], prompt, n_prompt);
    r.prefill = now() - t0;
    for (int i = 0; i < use; i++) ms[i].forward = 0;
    t0 = now();
    for (int s = 0; s < n_decode; s++) {
        double c0 = now();
        int best = 0;
        if (guided) {
            for (int i = 0; i < use; i++) log_softmax_add(lg[i], 1.0f, acc, i == 0);
            for (int v = 1; v < n_vocab; v++) if (acc[v] > acc[best]) best = v;
        } else {
            for (int v = 1; v < n_vocab; v++) if (lg[0][v] > lg[0][best]) best = v;
        }
        r.combine += now() - c0;
        if (s < 8) r.first_tokens[s] = best;
        llama_token t = best;
        for (int i = 0; i < use; i++) lg[i] = eval(&ms[i], &t, 1);
    }
    r.decode = now() - t0;
    for (int i = 0; i < use; i++) r.forward[i] = ms[i].forward;
    free(acc);
    return r;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *xs, int n) {
    qsort(xs, n, sizeof(double), cmp);
    return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: %s GGUF_DIR FORMATS PROMPT DECODE REPEATS THREADS BASE ARM...\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    char formats_buf[256];
    snprintf(formats_buf, sizeof formats_buf, "%s", argv[2]);
    int n_prompt = atoi(argv[3]), n_decode = atoi(argv[4]), repeats = atoi(argv[5]), threads = atoi(argv[6]);
    int n_models = argc - 7;
    char **names = argv + 7;
    if (n_models > MAX_MODELS || repeats > MAX_REPEATS) return 2;

    llama_log_set(quiet, NULL);
    llama_backend_init();

    char *formats[MAX_FORMATS];
    int n_formats = 0;
    for (char *f = strtok(formats_buf, ","); f && n_formats < MAX_FORMATS; f = strtok(NULL, ",")) formats[n_formats++] = f;

    static Model ms[MAX_FORMATS][MAX_MODELS];
    for (int f = 0; f < n_formats; f++) {
        for (int i = 0; i < n_models; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s-%s.gguf", dir, names[i], formats[f]);
            struct llama_model_params mp = llama_model_default_params();
            mp.n_gpu_layers = 0;
            ms[f][i].model = llama_model_load_from_file(path, mp);
            if (!ms[f][i].model) { fprintf(stderr, "cannot load %s\n", path); return 1; }
            struct llama_context_params cp = llama_context_default_params();
            cp.n_ctx = 256;
            cp.n_batch = 256;
            cp.n_ubatch = 256;
            cp.n_threads = threads;
            cp.n_threads_batch = threads;
            cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            ms[f][i].ctx = llama_init_from_model(ms[f][i].model, cp);
            if (!ms[f][i].ctx) { fprintf(stderr, "cannot create a context for %s\n", path); return 1; }
        }
    }
    n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(ms[0][0].model));
    llama_token *prompt = malloc(sizeof(llama_token) * n_prompt);
    srand(0);
    for (int i = 0; i < n_prompt; i++) prompt[i] = rand() % n_vocab;

    for (int f = 0; f < n_formats; f++) one_run(ms[f], n_models, prompt, 8, 2, 1);
    static Run base_runs[MAX_FORMATS][MAX_REPEATS], guided_runs[MAX_FORMATS][MAX_REPEATS];
    for (int r = 0; r < repeats; r++) {
        for (int f = 0; f < n_formats; f++) {
            base_runs[f][r] = one_run(ms[f], n_models, prompt, n_prompt, n_decode, 0);
            guided_runs[f][r] = one_run(ms[f], n_models, prompt, n_prompt, n_decode, 1);
        }
    }
    for (int f = 0; f < n_formats; f++) {
        double a[MAX_REPEATS], b[MAX_REPEATS], c[MAX_REPEATS], d[MAX_REPEATS], e[MAX_REPEATS], o[MAX_REPEATS];
        for (int r = 0; r < repeats; r++) {
            Run *B = &base_runs[f][r], *G = &guided_runs[f][r];
            a[r] = n_prompt / B->prefill;
            b[r] = n_prompt / G->prefill;
            c[r] = n_decode / B->decode;
            d[r] = n_decode / G->decode;
            e[r] = G->combine * 1e3 / n_decode;
            double fw = 0;
            for (int i = 0; i < n_models; i++) fw += G->forward[i];
            o[r] = (G->decode - fw) / G->decode;
        }
        printf("{\"format\": \"%s\", \"api\": \"c\", \"threads\": %d, \"vocab\": %d, \"prompt_tokens\": %d, "
               "\"decode_tokens\": %d, \"repeats\": %d, "
               "\"base_only\": {\"prompt_tokens_per_second\": %.3f, \"decode_tokens_per_second\": %.3f}, "
               "\"guided\": {\"prompt_tokens_per_second\": %.3f, \"decode_tokens_per_second\": %.3f}, ",
               formats[f], threads, n_vocab, n_prompt, n_decode, repeats,
               median(a, repeats), median(c, repeats), median(b, repeats), median(d, repeats));
        double step[MAX_REPEATS];
        for (int r = 0; r < repeats; r++) step[r] = guided_runs[f][r].decode * 1e3 / n_decode;
        printf("\"guided_step_ms\": %.4f, \"combine_ms_per_token\": %.4f, \"outside_forward\": %.5f, \"forward_ms_per_token\": {",
               median(step, repeats), median(e, repeats), median(o, repeats));
        for (int i = 0; i < n_models; i++) {
            double fw[MAX_REPEATS];
            for (int r = 0; r < repeats; r++) fw[r] = guided_runs[f][r].forward[i] * 1e3 / n_decode;
            printf("%s\"%s\": %.4f", i ? ", " : "", names[i], median(fw, repeats));
        }
        printf("}}\n");
    }
    for (int f = 0; f < n_formats; f++)
        for (int i = 0; i < n_models; i++) {
            llama_free(ms[f][i].ctx);
            llama_model_free(ms[f][i].model);
        }
    llama_backend_free();
    return 0;
}
