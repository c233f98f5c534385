# One image recipe for the coordinator and the sample services (docker-compose.yml picks the project):
#   docker build --build-arg PROJECT=Coordinator/TwoPC.Coordinator.Server -t twopc-coordinator .
# The build context is the repository root because the projects reference each other across folders.
ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
ARG PROJECT
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig BannedSymbols.txt ./
COPY Coordinator/ Coordinator/
COPY Participants/ Participants/
COPY Samples/ Samples/
COPY Testing/ Testing/
COPY Tests/TwoPC.Testing/ Tests/TwoPC.Testing/
COPY Tests/Directory.Build.props Tests/
RUN test -n "$PROJECT" || (echo "build with --build-arg PROJECT=<project directory>" >&2; exit 1)
RUN dotnet publish "$PROJECT" -c Release -o /app && \
    ln -s "$(basename "$PROJECT").dll" /app/service.dll

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}
WORKDIR /app
COPY --from=build /app ./
# Not root: the image's unprivileged `app` user ($APP_UID). It owns the coordinator's log directory (a named volume
# mounted there starts with this ownership) and nothing else; the application files stay root-owned and read-only to it.
RUN mkdir -p /var/lib/twopc/log && chown -R "$APP_UID:$APP_UID" /var/lib/twopc
USER $APP_UID
# Listen on all interfaces inside the container; compose publishes only what it must, on 127.0.0.1.
# `Urls` (not ASPNETCORE_URLS): the services' appsettings.json sets Urls, and only an unprefixed variable overrides it.
ENV Urls=http://0.0.0.0:8080 DOTNET_CLI_TELEMETRY_OPTOUT=1
# Off the loopback the coordinator's transaction API needs credentials: anonymous access (the appsettings.json default
# for local use on 127.0.0.1) is turned off here, or the coordinator would refuse to start on 0.0.0.0.
ENV Coordinator__Authentication__AllowAnonymous=false
EXPOSE 8080
# No curl in the runtime image: bash's /dev/tcp is enough for an HTTP health probe.
HEALTHCHECK --interval=5s --timeout=3s --retries=30 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["dotnet", "service.dll"]
