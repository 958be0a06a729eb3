# ErlcppPool: calls from Elixir spread over C++ workers (gen_servers on erlcpp nodes) found
# through a :pg group, with failover — the same algorithm as examples/erlang/erlcpp_pool.erl
# (docs/distribution.md).
#
#     iex> ErlcppPool.call(:pg, :erlcpp_pool, {:work, 21}, 5000)
#     {:ok, 42}
defmodule ErlcppPool do
  @spec call(atom, term, term, timeout) :: {:ok, term} | {:error, term}
  def call(scope, group, request, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout

    case :pg.get_members(scope, group) |> Enum.sort() do
      [] ->
        {:error, :no_members}

      members ->
        {tail, head} = Enum.split(members, rem(next_index(scope, group), length(members)))
        try_members(head ++ tail, request, deadline, :no_members)
    end
  end

  defp try_members([], _request, _deadline, last), do: {:error, last}

  defp try_members([pid | rest], request, deadline, _last) do
    left = deadline - System.monotonic_time(:millisecond)

    if left <= 0 do
      {:error, :timeout}
    else
      try do
        {:ok, GenServer.call(pid, request, left)}
      catch
        # Never reached the worker: the next member may take the call.
        :exit, {:noproc, _} -> try_members(rest, request, deadline, :noproc)
        :exit, {{:nodedown, _}, _} -> try_members(rest, request, deadline, :nodedown)
        :exit, {:noconnection, _} -> try_members(rest, request, deadline, :noconnection)
        :exit, {reason, _} -> {:error, reason}
      end
    end
  end

  # One counter per group (atomics in :persistent_term), shared by this node's callers.
  defp next_index(scope, group) do
    key = {__MODULE__, scope, group}

    ref =
      case :persistent_term.get(key, nil) do
        nil ->
          :persistent_term.put(key, :atomics.new(1, []))
          :persistent_term.get(key)

        r ->
          r
      end

    :atomics.add_get(ref, 1, 1)
  end
end
