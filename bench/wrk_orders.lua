-- wrk script of bench/bench_order_entry.py: one Lua state per wrk thread.
--
--   wrk ... -s bench/wrk_orders.lua URL -- MODE BUYER_TOKENS SELLER_TOKENS SYMBOLS
--
-- MODE      orders    POST /api/v1/orders/: 1 GPU limit GTC, random side, 10.00 +/- 0.30 EUR
--           reference POST /bench/reference/: the same bodies, the floor (bench/reference.py)
--           batch     POST /api/v1/orders/batch/: 100 such orders of one member per request
--           rest      POST /api/v1/orders/: 1 GPU buy at 5.00 EUR, which never crosses (it rests)
-- BUYER_TOKENS, SELLER_TOKENS, SYMBOLS: comma-separated. A buy carries a buyer's
-- token, a sell a seller's; each request picks the member and the instrument.
-- done() prints one line "WRK_RESULT {json}" that the Python script reads.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local function split(text)
  local out = {}
  for item in string.gmatch(text or "", "[^,]+") do table.insert(out, item) end
  return out
end

local mode, buyers, sellers, symbols
local paths = {orders = "/api/v1/orders/", reference = "/bench/reference/",
               batch = "/api/v1/orders/batch/", rest = "/api/v1/orders/"}
-- responses (or, for batch, orders inside the responses) by status class
c2xx, c4xx, c5xx, cother, orders_ok, orders_failed = 0, 0, 0, 0, 0, 0
sent = 0  -- requests made; sent - answered = unanswered when the run ended

function init(args)
  mode, buyers, sellers, symbols = args[1], split(args[2]), split(args[3]), split(args[4])
  if paths[mode] == nil or #buyers == 0 or #sellers == 0 or #symbols == 0 then
    error("usage: -- orders|reference|batch|rest BUYER_TOKENS SELLER_TOKENS SYMBOLS")
  end
  math.randomseed(os.time() * 100 + (id or 0))
end

local function order(side, cents)
  return string.format(
    '{"instrument":"%s","side":"%s","type":"limit","price":"%d.%02d","quantity":1,"time_in_force":"GTC"}',
    symbols[math.random(#symbols)], side, math.floor(cents / 100), cents % 100)
end

local function headers(token)
  return {["Content-Type"] = "application/json", ["Authorization"] = "Token " .. token}
end

function request()
  sent = sent + 1
  if mode == "rest" then
    return wrk.format("POST", paths.rest, headers(buyers[math.random(#buyers)]), order("buy", 500))
  end
  local buy = math.random(2) == 1
  local members = buy and buyers or sellers
  local token = members[math.random(#members)]
  local side = buy and "buy" or "sell"
  if mode == "batch" then
    local items = {}
    for i = 1, 100 do items[i] = order(side, 970 + math.random(0, 60)) end
    return wrk.format("POST", paths.batch, headers(token), '{"orders":[' .. table.concat(items, ",") .. ']}')
  end
  return wrk.format("POST", paths[mode], headers(token), order(side, 970 + math.random(0, 60)))
end

function response(status, headers, body)
  if status >= 200 and status < 300 then c2xx = c2xx + 1
  elseif status >= 400 and status < 500 then c4xx = c4xx + 1
  elseif status >= 500 then c5xx = c5xx + 1
  else cother = cother + 1 end
  if mode == "batch" and status == 200 then
    for code in string.gmatch(body, '"status_code":(%d+)') do
      if code == "201" or code == "200" then orders_ok = orders_ok + 1 else orders_failed = orders_failed + 1 end
    end
  end
end

function done(summary, latency, requests)
  local sums = {c2xx = 0, c4xx = 0, c5xx = 0, cother = 0, orders_ok = 0, orders_failed = 0, sent = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(sums) do sums[name] = sums[name] + (thread:get(name) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"timeouts":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"non2xx":%d,' ..
    '"c2xx":%d,"c4xx":%d,"c5xx":%d,"cother":%d,"orders_ok":%d,"orders_failed":%d,"sent":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.timeout, e.connect, e.read, e.write, e.status,
    sums.c2xx, sums.c4xx, sums.c5xx, sums.cother, sums.orders_ok, sums.orders_failed, sums.sent))
end
