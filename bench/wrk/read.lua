-- GET requests of the read API, rotating what they ask for.
--
-- wrk ... -s bench/wrk/read.lua http://HOST:PORT -- KEY MODE SENSORS PREFIX [LIMIT]
--
-- MODE "alerts_open":   /api/v1/alerts?status=open&hazard=flood (a dashboard's
--                       poll; served from the alert-list cache once warm).
-- MODE "alerts_sensor": /api/v1/alerts?sensor_id=<random>&hazard=<random>&until=<unique>
--                       (an analyst's drill-down; the unique `until` makes every
--                       request a cache miss, so PostgreSQL answers each one).
-- MODE "readings":      /api/v1/sensors/<random>/readings?limit=LIMIT.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(dir .. "report.lua")
setup, response, done = report.setup, report.response, report.done

local mode, nsensors, prefix, limit, headers, now
counter = 0  -- global: report.lua reads it at the end
local hazards = {"flood", "landslide"}

function init(args)
  headers = {["Authorization"] = "Api-Key " .. args[1]}
  mode, nsensors, prefix, limit = args[2], tonumber(args[3]), args[4], tonumber(args[5] or "500")
  now = os.time()
  math.randomseed(now + thread_id * 7919)
end

function request()
  local path
  local sensor = string.format("%s%05d", prefix, math.random(nsensors))
  if mode == "alerts_open" then
    path = "/api/v1/alerts?status=open&hazard=flood"
  elseif mode == "alerts_sensor" then
    counter = counter + 1
    -- Seconds back from now, distinct per thread and request: a distinct URL every time.
    local until_ts = os.date("!%Y-%m-%dT%H:%M:%SZ", now - (counter * 64 + thread_id))
    path = string.format("/api/v1/alerts?sensor_id=%s&hazard=%s&until=%s", sensor, hazards[math.random(2)], until_ts)
  else
    path = string.format("/api/v1/sensors/%s/readings?limit=%d", sensor, limit)
  end
  return wrk.format("GET", path, headers)
end
