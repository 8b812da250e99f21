#include "common/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <string>

namespace affinity {

Status InitLogging(std::string_view program, std::string_view level, std::string_view destination) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return InvalidArgument("unknown log level '" + std::string(level) + "' (trace|debug|info|warn|error|off)");
  }
  std::shared_ptr<spdlog::logger> logger;
  std::string name(program);
  try {
    if (destination.empty() || destination == "stderr") {
      logger = spdlog::stderr_logger_mt(name);
      logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %n[%P] %l: %v");
    } else if (destination == "syslog") {
      logger = spdlog::syslog_logger_mt(name, name, LOG_PID, LOG_DAEMON);
      logger->set_pattern("%l: %v");
    } else {
      logger = spdlog::basic_logger_mt(name, std::string(destination));
      logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %n[%P] %l: %v");
    }
  } catch (const spdlog::spdlog_ex& e) {
    return InvalidArgument("cannot open log destination '" + std::string(destination) + "': " + e.what());
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

}  // namespace affinity
