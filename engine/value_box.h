// A type-erased, movable value: what a ring slot carries between stages whose types the engine
// does not know. Small values live inline (no allocation on the hot path); larger ones are boxed
// on the heap.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace ringtail {

class value_box {
public:
    static constexpr std::size_t inline_size = 48;

    template<typename T>
    static constexpr bool stored_inline =
      sizeof(T) <= inline_size &&
      alignof(T) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<T>;

    value_box() noexcept = default;

    template<typename T, typename D = std::decay_t<T>,
             typename = std::enable_if_t<!std::is_same_v<D, value_box>>>
    explicit value_box(T&& value) {
        if constexpr (stored_inline<D>) {
            ::new (static_cast<void*>(_buf)) D(std::forward<T>(value));
        } else {
            D* p = new D(std::forward<T>(value));
            std::memcpy(_buf, &p, sizeof p);
        }
        _ops = &ops_for<D>::table;
    }

    value_box(value_box&& other) noexcept { take_from(other); }
    value_box& operator=(value_box&& other) noexcept {
        if (this != &other) {
            reset();
            take_from(other);
        }
        return *this;
    }
    value_box(const value_box&) = delete;
    value_box& operator=(const value_box&) = delete;
    ~value_box() { reset(); }

    bool has_value() const { return _ops != nullptr; }

    // A copy, for fan-out to several successors; only for copyable types (checked when the
    // pipeline is built).
    value_box clone() const {
        value_box b;
        if (_ops != nullptr) {
            _ops->copy(b._buf, _buf);
            b._ops = _ops;
        }
        return b;
    }

    // The caller knows the type: the pipeline builder checked it at compile time.
    template<typename T>
    T& get() {
        if constexpr (stored_inline<T>) {
            return *std::launder(reinterpret_cast<T*>(_buf));
        } else {
            T* p;
            std::memcpy(&p, _buf, sizeof p);
            return *p;
        }
    }

    template<typename T>
    const T& get() const {
        return const_cast<value_box*>(this)->get<T>();
    }

    void reset() noexcept {
        if (_ops != nullptr) {
            _ops->destroy(_buf);
            _ops = nullptr;
        }
    }

private:
    struct ops {
        void (*move)(unsigned char* dst, unsigned char* src) noexcept; // leaves src destroyed
        void (*destroy)(unsigned char* p) noexcept;
        void (*copy)(unsigned char* dst, const unsigned char* src);
    };

    template<typename T>
    struct ops_for {
        static void move(unsigned char* dst, unsigned char* src) noexcept {
            if constexpr (stored_inline<T>) {
                T* s = std::launder(reinterpret_cast<T*>(src));
                ::new (static_cast<void*>(dst)) T(std::move(*s));
                s->~T();
            } else {
                std::memcpy(dst, src, sizeof(T*));
            }
        }
        static void destroy(unsigned char* p) noexcept {
            if constexpr (stored_inline<T>) {
                std::launder(reinterpret_cast<T*>(p))->~T();
            } else {
                T* t;
                std::memcpy(&t, p, sizeof t);
                delete t;
            }
        }
        static void copy(unsigned char* dst, const unsigned char* src) {
            if constexpr (std::is_copy_constructible_v<T>) {
                if constexpr (stored_inline<T>) {
                    ::new (static_cast<void*>(dst))
                      T(*std::launder(reinterpret_cast<const T*>(src)));
                } else {
                    const T* s;
                    std::memcpy(&s, src, sizeof s);
                    T* p = new T(*s);
                    std::memcpy(dst, &p, sizeof p);
                }
            }
        }
        static constexpr ops table{ &move, &destroy, &copy };
    };

    void take_from(value_box& other) noexcept {
        if (other._ops != nullptr) {
            other._ops->move(_buf, other._buf);
            _ops = other._ops;
            other._ops = nullptr;
        }
    }

    alignas(std::max_align_t) unsigned char _buf[inline_size];
    const ops* _ops = nullptr;
};

} // namespace ringtail
