// CurlTestClient: an independent HTTPS client for tests (libcurl's easy
// API, not our fetcher), so the storage host is checked against what any
// HTTP client sees. One easy handle: requests reuse its connection.
#pragma once

#include <curl/curl.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/test_env.h"

namespace affinity::testing {

struct HttpReply {
  CURLcode curl = CURLE_OK;
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  long connects = 0;
  std::string error;
};

struct RequestOptions {
  std::string range;
  std::string method = "GET";  // "HEAD" uses CURLOPT_NOBODY
  std::vector<std::string> headers;
  std::string body;  // sent when not empty
};

// One curl easy handle: requests on it reuse its connection (keep-alive).
class Client {
 public:
  // `grant_for(vm)` (may be empty) gives the grant sent with every request
  // naming /v1/vms/<vm>/... (unless the request sets its own Authorization).
  Client(const Certs& certs, std::string cert, std::string key,
         std::function<std::string(const std::string&)> grant_for = {})
      : ca_(certs.ca_cert),
        cert_(std::move(cert)),
        key_(std::move(key)),
        grant_for_(std::move(grant_for)),
        easy_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(easy_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  HttpReply Get(const std::string& url, const std::string& range = "", bool head = false) {
    RequestOptions o;
    o.range = range;
    if (head) o.method = "HEAD";
    return Perform(url, o);
  }

  HttpReply Perform(const std::string& url, const RequestOptions& o) {
    HttpReply r;
    char err[CURL_ERROR_SIZE] = {};
    curl_easy_reset(easy_);  // keeps the connection cache
    curl_easy_setopt(easy_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy_, CURLOPT_CAINFO, ca_.c_str());
    if (!cert_.empty()) {
      curl_easy_setopt(easy_, CURLOPT_SSLCERT, cert_.c_str());
      curl_easy_setopt(easy_, CURLOPT_SSLKEY, key_.c_str());
    }
    if (!o.range.empty()) curl_easy_setopt(easy_, CURLOPT_RANGE, o.range.c_str());
    if (o.method == "HEAD") {
      curl_easy_setopt(easy_, CURLOPT_NOBODY, 1L);
    } else if (o.method != "GET" || !o.body.empty()) {
      curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, o.method.c_str());
    }
    if (!o.body.empty()) {
      curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, o.body.c_str());
      curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE, static_cast<long>(o.body.size()));
    }
    curl_slist* headers = nullptr;
    bool has_auth = false;
    for (const auto& h : o.headers) {
      headers = curl_slist_append(headers, h.c_str());
      has_auth = has_auth || h.rfind("Authorization:", 0) == 0;
    }
    if (grant_for_ && !has_auth) {
      const std::string marker = "/v1/vms/";
      size_t at = url.find(marker);
      if (at != std::string::npos) {
        std::string vm = url.substr(at + marker.size());
        vm = vm.substr(0, vm.find('/'));
        std::string token = grant_for_(vm);
        if (!token.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
      }
    }
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy_, CURLOPT_PATH_AS_IS, 1L);  // send ".." as is: we test the server, not curl
    curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(
        easy_, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
          static_cast<std::string*>(u)->append(p, s * n);
          return s * n;
        });
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(
        easy_, CURLOPT_HEADERFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
          std::string line(p, s * n);
          auto colon = line.find(':');
          if (colon != std::string::npos) {
            std::string k = line.substr(0, colon);
            for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string v = line.substr(colon + 1);
            v.erase(0, v.find_first_not_of(' '));
            v.erase(v.find_last_not_of("\r\n ") + 1);
            (*static_cast<std::map<std::string, std::string>*>(u))[k] = v;
          }
          return s * n;
        });
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, &r.headers);
    r.curl = curl_easy_perform(easy_);
    r.error = err;
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(easy_, CURLINFO_NUM_CONNECTS, &r.connects);
    curl_slist_free_all(headers);
    return r;
  }

 private:
  std::string ca_, cert_, key_;
  std::function<std::string(const std::string&)> grant_for_;
  CURL* easy_;
};

inline nlohmann::json Json(const HttpReply& r) { return nlohmann::json::parse(r.body, nullptr, false); }

}  // namespace affinity::testing
