-- Each undeclared action with the prompt that preceded it in its session:
-- the instruction the agent was acting on when it did what nobody
-- declared. One as-of join, from the action back in time. Run from inside
-- the evidence directory.
SELECT
    e.ts,
    e.session_id,
    e.kind,
    coalesce(
        array_to_string(e.argv, ' '),
        coalesce(e.new_path, e.path),
        coalesce(e.dns_name, e.addr) || ':' || e.port,
        e.unix_path,
        e.name
    ) AS what,
    e.tool_call_id,
    p.text AS preceding_prompt,
    p.ts AS prompt_ts
FROM read_parquet('events/**/*.parquet') AS e
ASOF LEFT JOIN (
    SELECT * FROM read_parquet('messages/**/*.parquet') WHERE role = 'prompt'
) AS p
    ON p.session_id = e.session_id AND p.ts <= e.ts
WHERE e.verdict = 'undeclared'
ORDER BY e.ts, e.seq;
