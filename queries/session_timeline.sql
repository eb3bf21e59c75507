-- One session from start to end, in order: what the agent was asked and
-- answered, the tool calls it declared (with the policy's decision), every
-- action observed in its process tree (with the tool call it was bound to
-- and its verdict), and the alerts raised. Set the session first:
--   SET VARIABLE session = '<session_id>';
-- Run from inside the evidence directory.
SELECT ts, source, kind, pid, tool_call_id, what, outcome
FROM (
    SELECT ts, 'message' AS source, role AS kind, NULL::UINTEGER AS pid,
           NULL AS tool_call_id, text AS what, NULL AS outcome
    FROM read_parquet('messages/**/*.parquet')
    WHERE session_id = getvariable('session')
    UNION ALL
    SELECT started, 'tool_call', 'tool.start', NULL, call_id,
           tool || ' ' || coalesce(args, ''), decision
    FROM read_parquet('tool_calls/**/*.parquet')
    WHERE session_id = getvariable('session')
    UNION ALL
    SELECT ended, 'tool_call', 'tool.end', NULL, call_id,
           tool || coalesce(' -> ' || result, ''), status
    FROM read_parquet('tool_calls/**/*.parquet')
    WHERE session_id = getvariable('session') AND ended IS NOT NULL
    UNION ALL
    SELECT ts, 'action', kind, pid, tool_call_id,
           coalesce(
               array_to_string(argv, ' '),
               coalesce(new_path, path),
               coalesce(dns_name, addr) || ':' || port,
               unix_path,
               name,
               CAST(exit_code AS VARCHAR)
           ),
           coalesce(verdict, error)
    FROM read_parquet('events/**/*.parquet')
    WHERE session_id = getvariable('session')
    UNION ALL
    SELECT ts, 'alert', kind, NULL, tool_call_id, message, severity
    FROM read_parquet('alerts/**/*.parquet')
    WHERE session_id = getvariable('session')
)
ORDER BY ts, source;
