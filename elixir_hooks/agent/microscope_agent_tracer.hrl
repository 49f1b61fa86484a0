%%% The tracer's state: one record, kept by the tracer process
%%% (microscope_agent_tracer: limits, batches, sending) and written by
%%% microscope_agent_events (what each message becomes), called from that
%%% process only. No other module includes it.

-record(tr, {controller, owner, batch_events, flush_ms, payload_limit, lifecycle = true,
             max_events, max_rate, shed_queue, max_queue,
             headers = [], payloads = [], pay_off = 0, in_batch = 0,
             seen = 0, kept = 0, dropped = 0, drop_since = none, batches = 0,
             intern = #{}, next_id = 1, defs = [],
             %% the rate window: its start, and how many were kept before it
             window_start, window_kept = 0, second, last_flush, stopped = false,
             %% when the tracer (and so any system monitor it holds) began
             started,
             %% seen bsr 8 at the last periodic check
             check = 0,
             %% monitor tracking: calls awaiting their return (pid -> target),
             %% and live monitors we reported (ref -> {target pid or none,
             %% watcher, how the watcher's process_info lists it}); those found
             %% missing at the last check whose 'DOWN' may be on its way, and
             %% when the next check is due (microscope_agent_events:check_monitors/1)
             track_monitors = false, monitor_calls = #{}, monitors = #{},
             monitor_suspects = #{}, monitor_check_at,
             %% batches the distribution could not take yet, oldest first
             pending = [],
             %% raised by the controller to stop us ahead of our backlog
             stop_flag,
             %% what a hooked callback costs beyond what the hook measures itself
             hook_overhead = 0,
             %% the hooks' report table and drop counter (REPORTS), the drops
             %% already accounted for, and the newest trace message's time
             reports, report_drops, drops_counted = 0, last_ts, reports_active = false,
             %% how far behind the newest trace message reports are taken (1 ms)
             report_lag = 0,
             %% processes inside a call on our reports table (a hook's insert)
             own_calls = #{},
             %% the last state seen of each hooked process (pid -> state), to
             %% rebuild a whole state from the changes a hook sends
             states = #{},
             %% GRANULARITY: the level, the payload limit asked for, 1-in-N
             %% sampling of messages asked for, and the count toward the next kept one
             adaptive = true, level = 0, level_at = 0, full_payload_limit, sample = 1,
             sample_n = 0,
             %% batches handed to the connection: Python has everything once it
             %% has taken this many (rows != kept: drop and granularity rows)
             sent = 0,
             %% FLIGHT: feeding a ring (every batch defines its own ids, so the
             %% ring can drop any batch and the intern table stays small), and
             %% the triggers: crash (any | [name binary]), mailbox (a length),
             %% monitor ([long_gc | long_schedule | large_heap]); watch maps
             %% the pids of watched names to them, over the pids whose mailbox
             %% is past the length
             ring = false, triggers = #{}, watch = #{}, over = #{},
             %% a microscope_flush message is on its way (flush_timer/1)
             flush_timer = false,
             %% triggers fired by events of the batch being built, newest first
             fired = [],
             %% how busy the schedulers were at the sampler's last round (per mille)
             load = 0,
             %% FAST PATH on (false only to test it against the general path),
             %% and how many events it wrote
             fast_path = true, fast = 0,
             %% PRIORITY: low while we keep up, normal while we are behind
             priority = low,
             %% the batch's last send: {Msg, Flags, PayOff, Size}, so the
             %% receive of that message shares its payload bytes (SHARED)
             last_sent = none}).

