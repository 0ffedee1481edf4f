-- wrk script: POST the JSON body in $BENCH_BODY on every request.
--   BENCH_BODY='{"sql":"SELECT 1"}' wrk -t2 -c10 -d5s -s bench/wrk/post.lua URL
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY") or error("BENCH_BODY is not set")
