"""One faster-whisper transcription, timed in the process, for benches/whisper/compare.sh:

    python benches/whisper/fw_run.py CT2_DIR AUDIO THREADS BEAM COMPUTE_TYPE

Prints one JSON line: load_s (model load), transcribe_s (audio decoding + mel + every window's encoder pass +
decoding, language fixed to English), encode_s (one more encoder pass over the first 30 s window, alone),
extra_s (the time spent after the transcription on that extra pass, mel included: compare.sh subtracts it from
the process's wall time), windows, and the text.
"""

import json
import sys
import time

t0 = time.perf_counter()
import ctranslate2  # noqa: E402
from faster_whisper import WhisperModel  # noqa: E402
from faster_whisper.audio import decode_audio, pad_or_trim  # noqa: E402

model_dir, audio_path, threads, beam, compute_type = sys.argv[1:6]
t1 = time.perf_counter()
model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=int(threads))
t2 = time.perf_counter()
segments, info = model.transcribe(audio_path, beam_size=int(beam), language="en")
text = "".join(s.text for s in segments).strip()  # the generator runs here
t3 = time.perf_counter()
features = model.feature_extractor(decode_audio(audio_path))
window = pad_or_trim(features[:, :3000])
t4 = time.perf_counter()
model.encode(window)
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "transcribe_s": t3 - t2, "encode_s": t5 - t4, "extra_s": t5 - t3,
                  "windows": -(-(features.shape[1] - 1) // 3000), "ctranslate2": ctranslate2.__version__,
                  "text": text}))
