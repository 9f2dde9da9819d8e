-- POST /api/v1/predictions with explicit measurements.
--
-- wrk ... -s bench/wrk/predict.lua URL -- KEY MODE [POOL HIT_SHARE [PACE_MS]]
--
-- MODE "miss": every body has fresh random values (2–4 decimals), so the
-- prediction cache almost never answers: each request runs XGBoost.
-- MODE "mix": HIT_SHARE of requests repeat one of POOL fixed bodies (clients
-- polling the same conditions; cache hits once warm), the rest are fresh.
-- PACE_MS > 0 makes each connection a client that waits for the answer, then
-- pauses a random 0.5..1.5 x PACE_MS before its next request (offered load
-- about CONNECTIONS / PACE_MS per millisecond), as bench/wrk/ingest.lua's
-- stations do; 0 (the default) is a closed loop.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(dir .. "report.lua")
setup, response, done = report.setup, report.response, report.done

local mode, pool, hit_share, headers
local pace = 0
local bodies = {}

local function fresh()
  return string.format(
    '{"rainfall":%.2f,"soil_moisture":%.4f,"ground_movement":%.3f,"water_level":%.3f,"rain_72h":%.1f}',
    math.random() * 60, 0.1 + math.random() * 0.6, math.random() * 8, math.random() * 6, math.random() * 250)
end

function init(args)
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Api-Key " .. args[1]}
  mode = args[2]
  pool, hit_share = tonumber(args[3] or "100"), tonumber(args[4] or "0.8")
  pace = tonumber(args[5] or "0")
  math.randomseed(4242)  -- the same pool in every thread
  for i = 1, pool do bodies[i] = fresh() end
  math.randomseed(os.time() + thread_id * 7919)
end

function delay()
  return report.pause(pace)
end

function request()
  local body
  if mode == "mix" and math.random() < hit_share then
    body = bodies[math.random(pool)]
  else
    body = fresh()
  end
  return wrk.format("POST", nil, headers, body)
end
