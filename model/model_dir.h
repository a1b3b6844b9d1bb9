/*
 * Hugging Face model directories, as `init`, `export` and every checkpoint write them:
 *   config.json, model.safetensors (or shards + index), generation_config.json and the
 *   tokenizer files (tokenizer.json, vocab.json, merges.txt, tokenizer_config.json).
 * model_dir_save writes the whole directory atomically (common/fileio.h SrAtomicDir): into
 * "<dir>.tmp-<pid>/", every file fsync'd, then swapped into place, the old directory kept until
 * the new one is complete. A failure or a kill at any point leaves the old directory as it was
 * (or no directory), never a mix that loads but tokenizes differently.
 */
#ifndef SR_MODEL_DIR_H
#define SR_MODEL_DIR_H

#include "../common/error.h"
#include "../data/tokenizer.h"
#include "model.h"

/* Writes the files above into the existing directory dir (tok may be NULL: no tokenizer
 * files). st_dtype: ST_F32, ST_BF16 or ST_F16. */
int model_dir_write(const Qwen2Model *m, const Tokenizer *tok, const char *dir, int st_dtype,
                    SrError *err);

/* generation_config.json: what transformers' generate() and vLLM read for defaults (bos/eos
 * from the config, sampling at temperature 0.6, top-p 0.95 as DeepSeek-R1-Distill ships). */
int model_dir_write_generation_config(const char *dir, const Qwen2Config *c, SrError *err);

/* The directory as a whole, atomically. An existing dir is replaced only when it is empty or a
 * model directory (it holds config.json): anything else is refused, never removed. */
int model_dir_save(const Qwen2Model *m, const Tokenizer *tok, const char *dir, int st_dtype,
                   SrError *err);

#endif
