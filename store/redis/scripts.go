package redis

import goredis "github.com/redis/go-redis/v9"

// The scripts compute key names from the prefix they are given (standalone
// Redis; see the package doc). Offsets travel as decimal strings and are
// compared as such (lt), so the checks are exact for every int64 offset;
// only zset scores are doubles.

// appendScript applies one batch atomically. Every check runs before the
// first write, so a rejected batch writes nothing.
//
// ARGV: prefix, ttl seconds, batch fingerprint, topic hex, generation,
// max records per partition (0 = none), max skipped ranges per partition,
// then
//
//	nparts, nparts × (partition, first record offset or "", required
//	        next offset or "", next offset to store, payload bytes added)
//	nrecs,  nrecs × (partition, offset, payload, meta, cursor prefix,
//	        "{p:010d}.{o:019d}", nthreads, nthreads × (tid', sequence))
//	nskips, nskips × (partition, from, to, reason)
//	nruns,  nruns × (tid', summary JSON, UpdatedAt score)
//
// Reply: {1, tid'…} applied, with the run summaries it deleted; {2} this batch was already applied (same
// fingerprint); {3} no meta (Redis lost it); {4, topic, generation} the
// epoch differs from the caller's; {0, message} offset rules broken.
var appendScript = goredis.NewScript(`
local P, ttl, fp = ARGV[1], ARGV[2], ARGV[3]
local maxrec, skipcap = tonumber(ARGV[6]), tonumber(ARGV[7])
local meta = P .. ':meta'
local cur = redis.call('HMGET', meta, 'topic', 'generation', 'last_batch')
if not cur[1] then return {3} end
if cur[1] ~= ARGV[4] or cur[2] ~= ARGV[5] then return {4, cur[1], cur[2] or ''} end
if fp ~= '' and cur[3] == fp then return {2} end

local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local nextk = P .. ':meta:next'

local i = 8
local np = tonumber(ARGV[i]); i = i + 1
local parts = {}
for k = 1, np do
  local p, first, req, fin, nb = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  i = i + 5
  local stored = redis.call('HGET', nextk, p)
  if first ~= '' then
    if stored and lt(first, stored) then
      return {0, 'partition ' .. p .. ' offset ' .. first .. ' below next offset ' .. stored}
    end
    local last = redis.call('ZREVRANGE', P .. ':partition:' .. p .. ':offsets', 0, 0)
    if last[1] then
      local lo = string.match(last[1], ':offset:(%d+)$')
      if lo and not lt(lo, first) then
        return {0, 'partition ' .. p .. ' offset ' .. first .. ' not after stored ' .. lo}
      end
    end
  end
  if req ~= '' and stored and lt(req, stored) then
    return {0, 'partition ' .. p .. ' next offset ' .. req .. ' below stored ' .. stored}
  end
  parts[k] = {p, fin, nb, first}
end

-- Records and thread entries.
local zsets = {}
local nr = tonumber(ARGV[i]); i = i + 1
for k = 1, nr do
  local p, o, payload, m, pfx, pado = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5]
  local nt = tonumber(ARGV[i+6])
  i = i + 7
  local pk = P .. ':partition:' .. p .. ':offset:' .. o
  redis.call('SET', pk, payload, 'EX', ttl)
  redis.call('SET', pk .. ':m', m, 'EX', ttl)
  local zk = P .. ':partition:' .. p .. ':offsets'
  redis.call('ZADD', zk, o, pk)
  zsets[zk] = true
  if nt > 0 then
    local tv = pfx .. payload
    for t = 1, nt do
      local tid, s = ARGV[i], ARGV[i+1]
      i = i + 2
      local base = P .. ':thread:' .. tid
      local member = base .. ':seq:' .. s
      local at = (s == '0')
      if not at and not redis.call('SET', member, tv, 'EX', ttl, 'NX') then
        -- The sequence is indexed already: by this record (overwrite) or
        -- by another one (disambiguate).
        at = redis.call('GETRANGE', member, 0, 11) ~= pfx
        if not at then redis.call('SET', member, tv, 'EX', ttl) end
      end
      if at then
        member = base .. ':at:' .. pado .. ':seq:' .. s
        redis.call('SET', member, tv, 'EX', ttl)
      end
      local tz = base .. ':sequences'
      redis.call('ZADD', tz, s, member)
      zsets[tz] = true
    end
  end
end
for zk in pairs(zsets) do redis.call('EXPIRE', zk, ttl) end

-- Next offsets, partitions, bytes.
local bytesk = P .. ':bytes'
for k = 1, np do
  local e = parts[k]
  redis.call('HSET', nextk, e[1], e[2])
  redis.call('SADD', P .. ':meta:partitions', e[1])
  if e[3] ~= '0' then redis.call('HINCRBY', bytesk, e[1], e[3]) end
end
if nr > 0 then redis.call('EXPIRE', bytesk, ttl) end

-- Skipped ranges: one per start offset, the newest skipcap kept.
local ns = tonumber(ARGV[i]); i = i + 1
for k = 1, ns do
  local p, from, to, reason = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]
  i = i + 4
  local sk = P .. ':meta:skipped:' .. p
  redis.call('ZREMRANGEBYSCORE', sk, from, from)
  redis.call('ZADD', sk, from, from .. ':' .. to .. ':' .. reason)
  if skipcap > 0 then redis.call('ZREMRANGEBYRANK', sk, 0, -(skipcap + 1)) end
  redis.call('SADD', P .. ':meta:partitions', p)
end

-- Run summaries; runs untouched for longer than the TTL lost their
-- records and go.
local rk, uk, tk = P .. ':runs', P .. ':runs:updated', P .. ':runs:touched'
local reply = {1}
local nrun = tonumber(ARGV[i]); i = i + 1
if nrun > 0 then
  local now = tonumber(redis.call('TIME')[1])
  for k = 1, nrun do
    local tid, js, score = ARGV[i], ARGV[i+1], ARGV[i+2]
    i = i + 3
    redis.call('HSET', rk, tid, js)
    redis.call('ZADD', uk, score, tid)
    redis.call('ZADD', tk, now, tid)
  end
  local old = redis.call('ZRANGEBYSCORE', tk, '-inf', '(' .. (now - tonumber(ttl)), 'LIMIT', 0, 1000)
  if #old > 0 then
    redis.call('HDEL', rk, unpack(old))
    redis.call('ZREM', uk, unpack(old))
    redis.call('ZREM', tk, unpack(old))
    for _, tid in ipairs(old) do reply[#reply + 1] = tid end
  end
  redis.call('EXPIRE', rk, ttl)
  redis.call('EXPIRE', uk, ttl)
  redis.call('EXPIRE', tk, ttl)
end
if fp ~= '' then redis.call('HSET', meta, 'last_batch', fp) end

-- Count retention: the oldest records of each partition written to.
if maxrec > 0 then
  local function pad(s, n) return string.rep('0', n - #s) .. s end
  local function tohex(s)
    return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
  end
  for k = 1, np do
    local p = parts[k][1]
    if parts[k][4] ~= '' then
      local zk = P .. ':partition:' .. p .. ':offsets'
      local card = redis.call('ZCARD', zk)
      if card > maxrec then
        local n = math.min(card - maxrec, ` + maxEvictPerBatchLua + `)
        local victims = redis.call('ZRANGE', zk, 0, n - 1)
        local freed = 0
        local touched = {}
        for _, pk in ipairs(victims) do
          local m = redis.call('GET', pk .. ':m')
          local o = string.match(pk, ':offset:(%d+)$') or ''
          local hdr = m and string.match(m, '^1 ([^\n]*)\n')
          if hdr then
            local w = 0
            local pfxhex
            for tok in string.gmatch(hdr, '%S+') do
              w = w + 1
              if w == 1 then
                freed = freed + tonumber(tok)
              elseif w == 2 then
                pfxhex = tok
              else
                local tid, s = string.match(tok, '^(.+):(%d+)$')
                if tid then
                  local base = P .. ':thread:' .. tid
                  local tz = base .. ':sequences'
                  local ref = base .. ':seq:' .. s
                  if tohex(redis.call('GETRANGE', ref, 0, 11)) == pfxhex then
                    redis.call('DEL', ref)
                    redis.call('ZREM', tz, ref)
                  end
                  local at = base .. ':at:' .. pad(p, 10) .. '.' .. pad(o, 19) .. ':seq:' .. s
                  redis.call('DEL', at)
                  redis.call('ZREM', tz, at)
                  touched[tid] = tz
                end
              end
            end
          else
            freed = freed + redis.call('STRLEN', pk)
          end
          redis.call('DEL', pk, pk .. ':m')
        end
        redis.call('ZREMRANGEBYRANK', zk, 0, n - 1)
        if freed > 0 then redis.call('HINCRBY', bytesk, p, -freed) end
        for tid, tz in pairs(touched) do
          if redis.call('ZCARD', tz) == 0 then
            redis.call('HDEL', rk, tid)
            redis.call('ZREM', uk, tid)
            redis.call('ZREM', tk, tid)
            reply[#reply + 1] = tid
          end
        end
      end
    end
  end
end
return reply
`)

// maxEvictPerBatchLua bounds the records count retention deletes from one
// partition in one Append, so a lowered limit cannot block Redis for long;
// the rest goes with the next batches.
const maxEvictPerBatchLua = "5000"

// forgetScript removes members whose payload expired from a partition zset
// (KEYS[1]) and takes an estimate of their bytes off P:bytes (KEYS[2],
// field ARGV[1]): their share of the partition's bytes, as the payloads
// are gone. ARGV[2…] are the members.
var forgetScript = goredis.NewScript(`
local card = redis.call('ZCARD', KEYS[1])
local removed = 0
for k = 2, #ARGV, 500 do
  removed = removed + redis.call('ZREM', KEYS[1], unpack(ARGV, k, math.min(k + 499, #ARGV)))
end
if removed > 0 and card > 0 then
  local b = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
  if card == removed then
    redis.call('HDEL', KEYS[2], ARGV[1])
  elseif b > 0 then
    redis.call('HINCRBY', KEYS[2], ARGV[1], -math.floor(b * removed / card))
  end
end
return removed
`)

// createScript writes the meta of a namespace that has none (KEYS[1] =
// P:meta, KEYS[2] = P:meta:next, KEYS[3] = P:meta:partitions). ARGV: the
// number of meta fields, the meta field/value pairs, then next offset
// partition/value pairs. It returns 0 and writes nothing when the meta
// exists.
var createScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local nf = tonumber(ARGV[1])
for k = 2, 2 * nf, 2 do redis.call('HSET', KEYS[1], ARGV[k], ARGV[k + 1]) end
for k = 2 * nf + 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[k], ARGV[k + 1])
  redis.call('SADD', KEYS[3], ARGV[k])
end
return 1
`)
