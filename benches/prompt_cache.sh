#!/bin/bash
# Usage: MODEL=smollm2-q8.edgelm [EDGELM=target/release/edgelm] bash benches/prompt_cache.sh
# Each size: a first run with --prompt-cache writes the cache (question one); then question two
# uncached (twice), and cached: rep1 reuses the shared prefix and saves the new prompt, rep2 the whole.
# TTFT (wall time of `run -n 1`) and peak RSS, with and without --prompt-cache.
E=$(realpath ${EDGELM:-target/release/edgelm}); M=$(realpath ${MODEL:?a packed SmolLM2 file}); W=$(mktemp -d); cd "$W"
python3 -c "print(\"The lighthouse keeper wrote in his log every evening: the wind, the colour of the sea, the ships that passed and the birds that rested on the rail. Years later his daughter read the logs and found a quiet history of the coast. \" * 200, end=\"\")" > base.txt
for n in 200 1000 3000; do
  chars=$(python3 -c "print(int($n*4.69))")
  P="$(head -c $chars base.txt)"
  rm -f c$n.cache
  $E run $M --raw -p "$P Question one: who kept the log?" -n 1 --temp 0 -t 2 --prompt-cache c$n.cache >/dev/null 2>c$n.make.err
  for mode in uncached cached; do
    extra=(); [ $mode = cached ] && extra=(--prompt-cache c$n.cache)
    for rep in 1 2; do
      /usr/bin/time -v $E run $M --raw -p "$P Question two: what did his daughter find?" -n 1 --temp 0 -t 2 "${extra[@]}" >/dev/null 2>$mode$n.$rep.err
      wall=$(grep "Elapsed (wall" $mode$n.$rep.err | awk '{print $NF}')
      rss=$(grep "Maximum resident" $mode$n.$rep.err | awk '{print $NF}')
      info=$(grep -E "prompt cache|edgelm:" $mode$n.$rep.err | tr '\n' ' ')
      echo "$n $mode rep$rep wall=$wall rssKB=$rss | $info"
    done
  done
  du -k --apparent-size c$n.cache | awk '{print "apparent KiB", $1}'; du -k c$n.cache | awk '{print "disk KiB", $1}'
done
