#!/usr/bin/env bash
# Packs every packable project of TwoPC.sln to a throw-away local feed, then uses the packages the way a user would:
# a fresh `dotnet new console` app references TwoPC.Hosting, TwoPC.Participants.PostgreSql, TwoPC.Participants.RabbitMq
# and TwoPC.Client from that feed (PackageReference, never ProjectReference), builds and runs code on their public API;
# the two tools (TwoPC.Cli -> twopc, TwoPC.Coordinator.Server -> twopc-server) are installed from the feed and run;
# a second app runs a coordinator on the testing package's InMemoryTransactionLog.
# Exits non-zero on the first failure, so packaging cannot silently break. Run by .ci/run; about 1-3 minutes.
#
#   bash scripts/pack-and-consume.sh            # keeps nothing
#   KEEP_WORK=1 bash scripts/pack-and-consume.sh  # leaves the work directory (feed, app, tools) for a look
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

work=$(mktemp -d "${TMPDIR:-/tmp}/twopc-pack.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ "${KEEP_WORK:-0}" = "1" ]; then echo "pack-and-consume: work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "pack-and-consume: error: $*" >&2; exit 1; }

feed=$work/feed
# A private global-packages folder: a package rebuilt under the same version is never taken from an older cache.
export NUGET_PACKAGES=$work/packages

# 1. Pack every packable project (the libraries, the two tools, the testing packages).
echo "pack-and-consume: dotnet pack TwoPC.sln -c Release -o $feed"
dotnet pack TwoPC.sln -c Release -o "$feed" -v quiet -nologo || fail "dotnet pack failed"

expected="TwoPC.Core TwoPC.Hosting TwoPC.Client TwoPC.Cli TwoPC.Coordinator.Server TwoPC.Participants.PostgreSql
TwoPC.Participants.RabbitMq TwoPC.Participants.Remote TwoPC.TestServers TwoPC.Verify TwoPC.OpenTelemetry"
expected="$expected TwoPC.Participants.PostgreSql.EntityFrameworkCore"
expected="$expected TwoPC.Durability.PostgreSql"
version=""
for id in $expected; do
  nupkg=$(find "$feed" -maxdepth 1 -name "$id.[0-9]*.nupkg" ! -name '*.snupkg' | head -n 1)
  [ -n "$nupkg" ] || fail "no package $id in the feed"
  [ -f "${nupkg%.nupkg}.snupkg" ] || fail "no symbol package (.snupkg) next to $(basename "$nupkg")"
  v=$(basename "$nupkg" .nupkg); v=${v#"$id."}
  if [ -z "$version" ]; then version=$v; elif [ "$v" != "$version" ]; then fail "$id is $v, the others $version"; fi
done
echo "pack-and-consume: $(find "$feed" -name '*.nupkg' | wc -l) packages (+ symbols), version $version"

# 2. A fresh console app against the feed. The nuget.config adds the local feed to the machine's own sources.
app=$work/consumer
mkdir -p "$app"
cat > "$app/nuget.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="twopc-local" value="$feed" />
  </packageSources>
</configuration>
EOF
(cd "$app" && dotnet new console -n Consumer -o . --framework net10.0 >/dev/null) || fail "dotnet new console failed"
for id in TwoPC.Hosting TwoPC.Participants.PostgreSql TwoPC.Participants.RabbitMq TwoPC.Client; do
  (cd "$app" && dotnet add Consumer.csproj package "$id" --version "$version" --no-restore >/dev/null) || fail "dotnet add package $id $version failed"
done
cat > "$app/Program.cs" <<'EOF'
// Built only from the packages: the public API a user starts with.
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RabbitMQ.Client;
using TwoPC.Client;
using TwoPC.Hosting;
using TwoPC.Participants.PostgreSql;
using TwoPC.Participants.RabbitMq;
using TwoPC.Protocol;

var services = new ServiceCollection();
services.AddLogging();
services.AddSingleton(_ => NpgsqlDataSource.Create("Host=127.0.0.1;Database=orders"));
services.AddTwoPhaseCommit(configure: o =>
    {
        o.NodeId = "consumer-1";
        o.LogDirectory = Path.Combine(Path.GetTempPath(), "twopc-consumer-log");
    })
    .AddResourceManager((sp, ct) => PostgresResourceManager.CreateAsync("orders", sp.GetRequiredService<NpgsqlDataSource>(), cancellationToken: ct))
    .AddResourceManager((sp, ct) => RabbitMqResourceManager.CreateAsync("events", new ConnectionFactory { Uri = new("amqp://127.0.0.1") }, cancellationToken: ct));

using var http = new HttpClient(new ApiKeyHandler("consumer-api-key-of-at-least-32-bytes!", new SocketsHttpHandler()))
{
    BaseAddress = new("http://127.0.0.1:5080/"),
};
var client = new TwoPCClient(http);

// Not started (no servers here): resolving the types is enough to prove the assemblies load.
var version = typeof(TransactionCoordinator).Assembly
    .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
    .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
Console.WriteLine($"consumer: {services.Count} services registered; TwoPC.Core {version}; client for {client.Http.BaseAddress}");
EOF
(cd "$app" && dotnet build Consumer.csproj -c Release -v quiet -nologo) || fail "the consumer app does not build against the packages"
(cd "$app" && dotnet bin/Release/net10.0/Consumer.dll) || fail "the consumer app does not run"
# Every package the app restored is a packed one from the feed (not a project, not another source), with its readme.
for id in TwoPC.Core TwoPC.Hosting TwoPC.Participants.PostgreSql TwoPC.Participants.RabbitMq TwoPC.Client; do
  dir=$NUGET_PACKAGES/$(echo "$id" | tr '[:upper:]' '[:lower:]')/$version
  [ -f "$dir/README.md" ] || fail "$id $version was not restored from the feed with its README.md"
  grep -q '<license type="expression">MIT</license>' "$dir/$(echo "$id" | tr '[:upper:]' '[:lower:]').nuspec" \
    || fail "$id has no MIT license expression"
done

# 3. The two tools, installed from the feed and run.
tools=$work/tools
for id in TwoPC.Cli TwoPC.Coordinator.Server; do
  dotnet tool install --tool-path "$tools" --add-source "$feed" --version "$version" "$id" >/dev/null \
    || fail "dotnet tool install $id $version failed"
done
"$tools/twopc" --help >/dev/null || fail "twopc --help failed"
echo "pack-and-consume: twopc --help ok"
find "$tools/.store" -path '*/tools/*' -name appsettings.json | grep -q . || fail "twopc-server ships no appsettings.json"

# twopc-server has no --help (every argument is configuration): start it on a free loopback port (port 0; the address
# is read from its "Now listening on" line) with a throw-away log, wait for /health to say Healthy, then stop it.
"$tools/twopc-server" --TwoPC:NodeId=pack-smoke-1 --TwoPC:LogDirectory="$work/server-log" \
  --Urls=http://127.0.0.1:0 >"$work/server.out" 2>&1 &
server_pid=$!
healthy=0
for _ in $(seq 1 120); do
  kill -0 "$server_pid" 2>/dev/null || break
  port=$(grep -Eo 'Now listening on: http://127\.0\.0\.1:[0-9]+' "$work/server.out" | head -n 1 | grep -Eo '[0-9]+$' || true)
  if [ -n "$port" ]; then
    # bash's /dev/tcp: no curl needed.
    reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3) 2>/dev/null || true)
    if printf '%s' "$reply" | head -n 1 | grep -q ' 200 ' && printf '%s' "$reply" | grep -q '"Healthy"'; then healthy=1; break; fi
  fi
  sleep 0.25
done
if [ "$healthy" -ne 1 ]; then
  cat "$work/server.out" >&2
  fail "twopc-server did not start and report Healthy on /health"
fi
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
echo "pack-and-consume: twopc-server started from the tool and reported Healthy"

# 4. The testing package as a user's test project gets it: a fresh app on TwoPC.TestServers from the feed (which brings
# TwoPC.Core) runs a coordinator on the shipped InMemoryTransactionLog, restarts it on the same instance, and checks the
# epoch moved on. No servers are started here: the PostgreSQL/RabbitMQ types only have to resolve.
testing=$work/testing-consumer
mkdir -p "$testing"
cp "$app/nuget.config" "$testing/nuget.config"
(cd "$testing" && dotnet new console -n TestingConsumer -o . --framework net10.0 >/dev/null) || fail "dotnet new console (testing) failed"
(cd "$testing" && dotnet add TestingConsumer.csproj package TwoPC.TestServers --version "$version" --no-restore >/dev/null) \
  || fail "dotnet add package TwoPC.TestServers $version failed"
cat > "$testing/Program.cs" <<'EOF'
// Built only from the TwoPC.TestServers package (and TwoPC.Core, which it brings).
using TwoPC.Protocol;
using TwoPC.Testing;
using TwoPC.TestServers;
using TwoPC.Transactions;

var log = new InMemoryTransactionLog();
var options = new TransactionCoordinatorOptions { NodeId = "testing-1" };
await using (var coordinator = new TransactionCoordinator(options, log))
{
    await coordinator.StartAsync();
    await using var tx = coordinator.Begin();
    var outcome = await tx.CommitAsync();
    if (outcome.Kind != OutcomeKind.Committed)
    {
        throw new InvalidOperationException("expected Committed, got " + outcome);
    }
}

await using (var restarted = new TransactionCoordinator(options, log))
{
    await restarted.StartAsync();
}

if (log.Epoch != 2)
{
    throw new InvalidOperationException($"expected epoch 2 after a restart on the same in-memory log, got {log.Epoch}");
}

Console.WriteLine($"testing consumer: InMemoryTransactionLog epoch {log.Epoch}; {typeof(PostgresServer).Name} and {typeof(RabbitMqServer).Name} resolved");
EOF
(cd "$testing" && dotnet build TestingConsumer.csproj -c Release -v quiet -nologo) || fail "the testing consumer does not build against TwoPC.TestServers"
(cd "$testing" && dotnet bin/Release/net10.0/TestingConsumer.dll) || fail "the testing consumer does not run"
[ -f "$NUGET_PACKAGES/twopc.testservers/$version/README.md" ] || fail "TwoPC.TestServers $version was not restored from the feed with its README.md"
echo "pack-and-consume: the testing package's InMemoryTransactionLog ran a coordinator from the feed"
echo "pack-and-consume: ok ($version)"
